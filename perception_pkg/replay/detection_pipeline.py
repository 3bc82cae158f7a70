"""The detection node's work on a bag: camera images (+ CameraInfo) in, detection topics out.

Runs exactly what the live ``detection`` node runs (same Detector, same message builders in
``ros/convert/detections.py``, same parameters from the node's section of the params file), on rosbags
messages. Also holds what node and pipeline share without ROS: the parameter defaults, loading the
detector from a card with one clear error, and the camera-info checks.

Pairing images with CameraInfo: the live node uses the newest CameraInfo it has (intrinsics rarely
change, and a camera driver publishes the pair at the same time). In a bag the CameraInfo of a frame
is often stored just *after* its image (same stamp), so "newest" would leave the first frame without
3D and use the previous frame's info for the others. Once the bag has shown a CameraInfo, the pipeline
therefore holds an image until the CameraInfo with the image's stamp arrives (or the next image does),
so each frame is lifted with its own calibration. A bag without CameraInfo is never held back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.detection.detector import DetectionResult, Detector, default_detector_card
from perception_pkg.msgs import (
    CameraModel,
    MessageFactory,
    MessageFormatError,
    array_to_image,
    camera_info_to_model,
    compressed_to_array,
    detection2d_array,
    detection3d_array,
    image_to_bgr,
    stamp_to_ns,
)
from perception_pkg.paths import models_dir
from perception_pkg.viz.detections import draw_detections
from perception_pkg.viz.markers import detection_markers

log = logging.getLogger("perception_pkg.replay.detection")

NODE_NAME = "detection"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"

# Defaults of the detection node's parameters (the node declares these; replay reads the same keys).
DEFAULTS: dict[str, Any] = {
    "model_card": "",  # empty: the shipped models/sim_detector/card.yaml
    "backend": "auto",
    "threads": 0,
    "image_topic": "/camera/image_raw",
    "compressed": False,
    "camera_info_topic": "/camera/camera_info",
    "score_threshold": 0.3,
    "lift_3d": True,
    "detections_2d_topic": "~/detections_2d",
    "detections_3d_topic": "~/detections_3d",
    "markers_topic": "~/markers",
    "annotated_topic": "~/annotated",
    "marker_lifetime_s": 0.5,
}


def resolve_card(card: str) -> Path:
    """The card file a ``model_card`` parameter names: empty -> the shipped detector; a relative path
    that does not exist from the working directory is looked up under ``models/`` (so a config can say
    ``sim_detector/card.yaml`` on any machine); a folder means its ``card.yaml``."""
    if not card:
        return default_detector_card()
    path = Path(card).expanduser()
    if not path.is_absolute() and not path.exists():
        path = models_dir() / path
    return path / "card.yaml" if path.is_dir() else path


def load_detector(
    card: str,
    backend: str = "auto",
    *,
    threads: int = 0,
    score_threshold: float = 0.0,
    lift_3d: bool = True,
    where: str = f"parameter '{NODE_NAME}.model_card'",
) -> Detector:
    """A Detector for the card, or ValueError with one message that names the card and what is wrong
    (missing file, not a detection card, decoder mismatch, engine that cannot load)."""
    path = resolve_card(card)
    if not path.is_file():
        shipped = " (the shipped detector is written by training; set model_card to another card)"
        raise ValueError(f"{where}: model card not found: {path}{shipped if not card else ''}")
    try:
        return Detector.from_card(
            path,
            backend=backend,
            score_threshold=score_threshold,
            lift_3d=lift_3d,
            threads=threads or None,
        )
    except Exception as exc:  # CardError, a non-detection card, an engine that cannot start: one message
        raise ValueError(f"{where}: cannot load detector from {path}: {type(exc).__name__}: {exc}") from exc


def private_topic(topic: str, node: str = NODE_NAME, namespace: str = "") -> str:
    """``~/x`` -> ``<namespace>/<node>/x`` as rclpy expands it (bags have no node to expand it)."""
    if topic.startswith("~/"):
        return f"{namespace.rstrip('/')}/{node}/{topic[2:]}"
    return topic


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


@dataclass
class DetectionOutputs:
    """The topics the detection node publishes (absolute names) and what it publishes on them."""

    detections_2d: str
    detections_3d: str
    markers: str
    annotated: str


@dataclass
class DetectionPipeline:
    """Replay pipeline: the configured image topic (+ its CameraInfo topic) -> detection topics."""

    types: MessageFactory
    detector: Detector
    image_topic: str
    camera_info_topic: str
    topics: DetectionOutputs
    compressed: bool = False
    annotated: bool = False
    marker_lifetime_s: float = 0.5
    name: str = "detection"
    frames_without_camera: int = 0
    _camera: CameraModel | None = field(default=None, repr=False)
    _camera_stamp: int | None = field(default=None, repr=False)
    _pending: tuple[Any, NDArray[np.uint8], int] | None = field(default=None, repr=False)
    _markers_sent: int = field(default=0, repr=False)

    @property
    def lifts_3d(self) -> bool:
        """Whether 3D boxes (and markers) are produced: the model has 3D heads and lifting is on."""
        return self.detector.has_3d and self.detector.lift_3d

    def wants(self, topic: str, msgtype: str) -> bool:
        if topic == self.camera_info_topic:
            return msgtype == CAMERA_INFO
        return topic == self.image_topic and msgtype == (COMPRESSED if self.compressed else IMAGE)

    def outputs_for(self, topic: str) -> list[tuple[str, str]]:
        if topic != self.image_topic:
            return []
        out = [(self.topics.detections_2d, "vision_msgs/msg/Detection2DArray")]
        if self.lifts_3d:
            out += [
                (self.topics.detections_3d, "vision_msgs/msg/Detection3DArray"),
                (self.topics.markers, "visualization_msgs/msg/MarkerArray"),
            ]
        if self.annotated:
            out.append((self.topics.annotated, IMAGE))
        return out

    def on_message(self, topic: str, msg: Any, stamp_ns: int) -> list[tuple[str, Any]]:
        if topic == self.camera_info_topic:
            self._camera = camera_info_to_model(msg)
            self._camera_stamp = stamp_to_ns(msg.header)
            pending, self._pending = self._pending, None
            return self._run(*pending) if pending is not None else []
        # decode now, so a malformed image is reported against its own message
        image = image_message_to_bgr(msg, self.compressed)
        stamp = stamp_to_ns(msg.header)
        out: list[tuple[str, Any]] = []
        if self._pending is not None:  # its CameraInfo never came: use the newest we have
            pending, self._pending = self._pending, None
            out += self._run(*pending)
        if self._camera is not None and self._camera_stamp != stamp and self.lifts_3d:
            self._pending = (msg.header, image, stamp)
            return out
        return out + self._run(msg.header, image, stamp)

    def finish(self) -> list[tuple[str, Any]]:
        """Outputs of an image still waiting for its CameraInfo at the end of the bag."""
        pending, self._pending = self._pending, None
        return self._run(*pending) if pending is not None else []

    def _run(self, header: Any, image: NDArray[np.uint8], stamp: int) -> list[tuple[str, Any]]:
        del stamp
        camera = self._camera
        problem = camera_problem(camera, header.frame_id, image.shape[:2])
        if problem:
            camera = None
            if self.lifts_3d:
                self.frames_without_camera += 1
        result: DetectionResult = self.detector(image, camera)
        out = [(self.topics.detections_2d, detection2d_array(result, header, self.types))]
        if self.lifts_3d:
            out.append((self.topics.detections_3d, detection3d_array(result, header, self.types)))
            markers = detection_markers(
                result,
                header,
                self.types,
                lifetime_s=self.marker_lifetime_s,
                previous_count=self._markers_sent,
            )
            self._markers_sent = len(result)
            out.append((self.topics.markers, markers))
        if self.annotated:
            drawn = draw_detections(image, result, camera)
            out.append((self.topics.annotated, array_to_image(drawn, "bgr8", header, self.types)))
        return out


def detection_pipeline(types: MessageFactory, params: Mapping[str, Any]) -> DetectionPipeline:
    """Factory for PIPELINES: the node's ``ros__parameters`` (missing keys take the node's defaults).
    ``replay_annotated: true`` also writes the annotated image (off by default: it makes bags large)."""
    p = {**DEFAULTS, **dict(params)}
    detector = load_detector(
        str(p["model_card"]),
        str(p["backend"]),
        threads=int(p["threads"]),
        score_threshold=float(p["score_threshold"]),
        lift_3d=bool(p["lift_3d"]),
    )
    del types  # the detection messages need more classes than MessageFactory has; same typestore
    topics = DetectionOutputs(
        *(private_topic(str(p[k])) for k in ("detections_2d_topic", "detections_3d_topic", "markers_topic",
                                              "annotated_topic"))
    )  # fmt: skip
    return DetectionPipeline(
        types=MessageFactory.rosbags(),
        detector=detector,
        image_topic=str(p["image_topic"]),
        camera_info_topic=str(p["camera_info_topic"]),
        topics=topics,
        compressed=bool(p["compressed"]),
        annotated=bool(p.get("replay_annotated", False)),
        marker_lifetime_s=float(p["marker_lifetime_s"]),
    )
