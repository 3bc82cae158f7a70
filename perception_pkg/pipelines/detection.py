"""detection: camera frames in, 2D detections (and RTM3D 3D boxes with CameraInfo) out.

Inputs   ``image``        sensor_msgs/Image, or CompressedImage with ``compressed: true``
         ``camera_info``  sensor_msgs/CameraInfo; used for 3D when its frame_id and size match the image
Outputs  ``detections_2d``  vision_msgs/Detection2DArray, every frame
         ``detections_3d``  vision_msgs/Detection3DArray in the camera optical frame, every frame when
                            the model has 3D heads (empty without usable CameraInfo)
         ``markers``        MarkerArray of the 3D boxes (on demand)
         ``annotated``      bgr8 Image with the boxes drawn (on demand; replay: ``replay_annotated``)
All outputs carry the input image's header. Message conventions: ``perception_pkg/msgs/detections.py``.

Pairing images with CameraInfo. A live node uses the newest CameraInfo it has (intrinsics rarely
change, and a driver publishes the pair together). A bag is read in file order, and the CameraInfo of
a frame is often stored just *after* its image (same stamp), so "newest" would leave the first frame
without 3D and use the previous frame's info for the others. Replay (``live=False``) therefore holds an
image, once the bag has shown a CameraInfo, until the CameraInfo with the image's stamp arrives (or the
next image does), so each frame is lifted with its own calibration. A bag without CameraInfo is never
held back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.detection import Detector, load_detector
from perception_pkg.engines.select import BACKENDS
from perception_pkg.geometry3d.camera import CameraModel
from perception_pkg.msgs import (
    MessageFormatError,
    array_to_image,
    camera_info_to_model,
    compressed_to_array,
    detection2d_array,
    detection3d_array,
    image_to_bgr,
    stamp_to_ns,
)
from perception_pkg.msgs.factory import MessageFactory
from perception_pkg.pipelines.base import Job, Pipeline, Port, Wanted
from perception_pkg.runtime.settings import ConfigError, setting
from perception_pkg.viz.detections import draw_detections
from perception_pkg.viz.markers import detection_markers

NODE_NAME = "detection"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"


@dataclass(frozen=True)
class DetectionSettings:
    model_card: str = setting(
        "", "detection card.yaml; empty = the shipped sim_detector; relative paths also resolve under models/"
    )
    backend: str = setting("auto", "inference backend", choices=BACKENDS)
    threads: int = setting(0, "CPU threads for the engine (0 = the backend's default)", minimum=0)
    image_topic: str = setting("/camera/image_raw", "camera image topic")
    compressed: bool = setting(False, "image_topic carries sensor_msgs/CompressedImage")
    camera_info_topic: str = setting("/camera/camera_info", "CameraInfo for 3D boxes")
    score_threshold: float = setting(0.3, "drop detections below", minimum=0.0, maximum=1.0)
    lift_3d: bool = setting(True, "solve 3D boxes when the model has 3D heads and CameraInfo matches")
    detections_2d_topic: str = setting("~/detections_2d", "output topic (Detection2DArray)")
    detections_3d_topic: str = setting("~/detections_3d", "output topic (Detection3DArray)")
    markers_topic: str = setting("~/markers", "output topic (3D box MarkerArray, while subscribed)")
    annotated_topic: str = setting("~/annotated", "output topic (annotated image, while subscribed)")
    marker_lifetime_s: float = setting(0.5, "RViz marker lifetime (s)", minimum=0.0)
    replay_annotated: bool = setting(False, "perception replay only: also write the annotated image")


def image_message_to_bgr(msg: Any, compressed: bool) -> NDArray[np.uint8]:
    """HxWx3 BGR from an Image (a view where the encoding allows) or a CompressedImage (decoded);
    MessageFormatError for anything the detector cannot take."""
    image = compressed_to_array(msg, color="bgr") if compressed else image_to_bgr(msg)
    if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:  # converters check; be sure
        raise MessageFormatError(
            COMPRESSED if compressed else IMAGE, "data", "a non-empty image", image.shape
        )
    return image


def camera_problem(camera: CameraModel | None, frame_id: str, hw: tuple[int, int]) -> str:
    """Why ``camera`` cannot lift this frame to 3D ("" when it can): none received, another frame, another
    size, or binning/ROI (P then describes the full sensor, not these pixels)."""
    if camera is None:
        return "no CameraInfo received yet"
    if camera.frame_id != frame_id:
        return f"CameraInfo frame '{camera.frame_id}' is not the image's '{frame_id}'"
    if (camera.height, camera.width) != tuple(hw):
        return f"CameraInfo is {camera.width}x{camera.height}, the image {hw[1]}x{hw[0]}"
    x_off, y_off, _, roi_w, _ = camera.roi
    if camera.binning_x > 1 or camera.binning_y > 1 or x_off or y_off or (roi_w and roi_w != camera.width):
        return "CameraInfo with binning or ROI is not supported for 3D"
    return ""


class DetectionPipeline(Pipeline):
    """``hold_for_camera_info``: replay's pairing (module docstring); a live node uses the newest."""

    name = NODE_NAME

    def __init__(
        self,
        settings: DetectionSettings,
        types: MessageFactory,
        detector: Detector,
        *,
        hold_for_camera_info: bool = False,
    ) -> None:
        super().__init__(types)
        self.settings = s = settings
        self.detector = detector
        self.hold_for_camera_info = hold_for_camera_info
        self.lifts_3d = detector.has_3d and detector.lift_3d
        self.inputs = [
            Port("image", s.image_topic, COMPRESSED if s.compressed else IMAGE),
            Port("camera_info", s.camera_info_topic, CAMERA_INFO),
        ]
        self.outputs = [Port("detections_2d", s.detections_2d_topic, "vision_msgs/msg/Detection2DArray")]
        if self.lifts_3d:
            self.outputs += [
                Port("detections_3d", s.detections_3d_topic, "vision_msgs/msg/Detection3DArray"),
                Port("markers", s.markers_topic, "visualization_msgs/msg/MarkerArray", on_demand=True),
            ]
        self.outputs.append(Port("annotated", s.annotated_topic, IMAGE, on_demand=True, debug=True))
        self._camera: CameraModel | None = None
        self._camera_stamp: int | None = None
        self._pending: Job | None = None
        self._markers_sent = 0
        # frames run without usable CameraInfo although the model lifts to 3D, by reason
        self.no_camera_info = 0
        self.camera_info_mismatch = 0
        self.camera_info_status = ""
        self.last_detections = 0
        self.last_timings: dict[str, float] = {}

    @property
    def frames_without_camera(self) -> int:
        return self.no_camera_info + self.camera_info_mismatch

    def accept(self, key: str, msg: Any, now_s: float) -> list[Job]:
        if key == "camera_info":
            self._camera = camera_info_to_model(msg)  # one reference swap: the worker reads it unlocked
            self._camera_stamp = stamp_to_ns(msg.header)
            pending, self._pending = self._pending, None
            return [pending] if pending is not None else []
        if not self.hold_for_camera_info:
            return [Job(msg, arrived=now_s)]
        # decode now, so a malformed image is reported against its own message
        job = Job(msg, arrived=now_s, payload=image_message_to_bgr(msg, self.settings.compressed))
        ready = []
        if self._pending is not None:  # its CameraInfo never came: run it with the newest we have
            ready.append(self._pending)
            self._pending = None
        if self._camera is not None and self._camera_stamp != stamp_to_ns(msg.header) and self.lifts_3d:
            self._pending = job
            return ready
        return [*ready, job]

    def finish(self) -> list[Job]:
        pending, self._pending = self._pending, None
        return [pending] if pending is not None else []

    def run(self, job: Job, wanted: Wanted | None = None) -> list[tuple[str, Any]]:
        image = (
            job.payload
            if job.payload is not None
            else image_message_to_bgr(job.msg, self.settings.compressed)
        )
        header = job.msg.header
        camera = self._camera
        problem = camera_problem(camera, header.frame_id, image.shape[:2])
        if problem:
            camera = None
        result = self.detector(image, camera)
        types = self.types
        out: list[tuple[str, Any]] = [("detections_2d", detection2d_array(result, header, types))]
        if self.lifts_3d:
            out.append(("detections_3d", detection3d_array(result, header, types)))
            if wanted is None or wanted("markers"):
                markers = detection_markers(
                    result,
                    header,
                    types,
                    lifetime_s=self.settings.marker_lifetime_s,
                    previous_count=self._markers_sent,
                )
                self._markers_sent = len(result)
                out.append(("markers", markers))
        if wanted is None or wanted("annotated"):  # drawing and a frame copy cost: only on demand
            drawn = draw_detections(image, result, camera)
            out.append(("annotated", array_to_image(drawn, "bgr8", header, types)))
        problem = problem if self.lifts_3d else ""  # a 2D-only model needs no CameraInfo
        if problem.startswith("no CameraInfo"):
            self.no_camera_info += 1
        elif problem:
            self.camera_info_mismatch += 1
        self.camera_info_status = problem or "ok"
        self.last_detections = len(result)
        self.last_timings = dict(result.timings)
        return out

    def describe(self) -> str:
        engine = self.detector.runner.engine
        return f"{self.detector.card.name} on {engine.describe() if hasattr(engine, 'describe') else engine}"

    def diagnostics(self, now_s: float | None = None) -> list[tuple[str, str]]:
        timings = " ".join(f"{k}={v * 1e3:.2f}" for k, v in self.last_timings.items())
        return [
            ("no_camera_info", str(self.no_camera_info)),
            ("camera_info_mismatch", str(self.camera_info_mismatch)),
            ("camera_info_status", self.camera_info_status),
            ("last_detections", str(self.last_detections)),
            ("last_timings_ms", timings),
        ]


def create(
    settings: DetectionSettings, types: MessageFactory, *, live: bool, detector: Detector | None = None
) -> DetectionPipeline:
    """The pipeline of these settings; ``detector`` replaces the card-built one (tests, or an application
    that builds its own). A card that cannot be loaded is a ConfigError naming the parameter."""
    if detector is None:
        try:
            detector = load_detector(
                settings.model_card,
                settings.backend,
                threads=settings.threads,
                score_threshold=settings.score_threshold,
                lift_3d=settings.lift_3d,
                where=f"parameter '{NODE_NAME}.model_card'",
            )
        except ValueError as exc:
            raise ConfigError(f"node '{NODE_NAME}': {exc}") from exc
    return DetectionPipeline(settings, types, detector, hold_for_camera_info=not live)
