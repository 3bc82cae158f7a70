"""detection: camera frames in, 2D detections (and RTM3D 3D boxes with CameraInfo) out.

Inputs   ``image``        sensor_msgs/Image, or CompressedImage with ``compressed: true``
         ``camera_info``  sensor_msgs/CameraInfo; used for 3D when its frame_id and size match the image
Outputs  ``detections_2d``  vision_msgs/Detection2DArray, every frame
         ``detections_3d``  vision_msgs/Detection3DArray in the camera optical frame, every frame when
                            the model has 3D heads (empty without usable CameraInfo)
         ``markers``        MarkerArray of the 3D boxes (on demand)
         ``annotated``      bgr8 Image with the boxes drawn (on demand; replay: ``replay_annotated``)
All outputs carry the input image's header. Message conventions: ``perception_pkg/msgs/detections.py``.

Pairing images with CameraInfo, by header stamp, whatever their order (a camera driver publishes the
pair together; a recording may store either first). An image whose CameraInfo (same stamp) has already
arrived runs at once with it. Otherwise, when the model lifts to 3D, the image waits up to
``camera_info_wait_s`` (on the caller's clock: monotonic live, bag time in replay) for it; when it does
not come in time, or the next image arrives first, the image runs with the newest CameraInfo there is
(counted ``camera_info_late``), or without 3D when there is none (``no_camera_info``). The first frame
is paired like every other, live and in replay. A recording with no CameraInfo topic holds nothing
back (replay tells the pipeline which inputs the recording has). Each reason a frame lacked a usable
camera is counted and logged once.
"""

from __future__ import annotations

import logging
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
)
from perception_pkg.msgs.factory import MessageFactory
from perception_pkg.pipelines.base import Job, Pipeline, Port, Wanted
from perception_pkg.pipelines.pairing import CameraInfoPairing, PairedCamera
from perception_pkg.runtime.settings import ConfigError, setting
from perception_pkg.viz.detections import draw_detections
from perception_pkg.viz.markers import detection_markers

log = logging.getLogger("perception_pkg.pipelines.detection")

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
    camera_info_wait_s: float = setting(
        0.1,
        "longest wait of an image for the CameraInfo with its stamp (s); then the newest is used",
        minimum=0.0,
    )
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


class DetectionPipeline(PairedCamera, Pipeline):
    """Images paired with CameraInfo by stamp (module docstring), then detected and published."""

    name = NODE_NAME

    def __init__(self, settings: DetectionSettings, types: MessageFactory, detector: Detector) -> None:
        super().__init__(types)
        self.settings = s = settings
        self.detector = detector
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
        self.pairing = CameraInfoPairing(NODE_NAME, s.camera_info_wait_s)
        self._markers_sent = 0
        self._logged: set[str] = set()
        # frames run without usable CameraInfo although the model lifts to 3D, by reason
        self.no_camera_info = 0
        self.camera_info_mismatch = 0
        self.camera_info_status = ""
        self.last_detections = 0
        self.last_timings: dict[str, float] = {}

    @property
    def frames_without_camera(self) -> int:
        """Frames lifted without their own CameraInfo or not at all."""
        return self.no_camera_info + self.camera_info_mismatch

    def accept(self, key: str, msg: Any, now_s: float) -> list[Job]:
        # parse first, hand over after (pipelines/pairing.py): a malformed message raises before a held
        # image leaves the buffer, so the held image is never lost with the exception
        if key == "camera_info":
            return self.pairing.add_info(camera_info_to_model(msg), msg.header, now_s)
        own = self.pairing.info_for(msg.header)
        if own is not None or not (self.lifts_3d and self.pairing.expected):
            return [*self.pairing.poll(now_s), Job(msg, partner=own, arrived=now_s)]
        # decode now, so a malformed image is reported against its own message, not when it is released
        job = Job(msg, arrived=now_s, payload=image_message_to_bgr(msg, self.settings.compressed))
        return self.pairing.hold(job, now_s)

    def _log_once(self, reason: str, text: str) -> None:
        if reason not in self._logged:
            self._logged.add(reason)
            log.warning("%s: %s (counted in diagnostics / summary.json; logged once)", self.name, text)

    def run(self, job: Job, wanted: Wanted | None = None) -> list[tuple[str, Any]]:
        image = (
            job.payload
            if job.payload is not None
            else image_message_to_bgr(job.msg, self.settings.compressed)
        )
        header = job.msg.header
        camera = job.partner if job.partner is not None else self.pairing.newest
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
            self._log_once("none", "a frame ran without 3D: no CameraInfo received yet")
        elif problem:
            self.camera_info_mismatch += 1
            self._log_once("mismatch", f"a frame ran without 3D: {problem}")
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
            ("camera_info_late", str(self.camera_info_late)),
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
    del live  # pairing by stamp works the same on a live graph and on a recording
    return DetectionPipeline(settings, types, detector)
