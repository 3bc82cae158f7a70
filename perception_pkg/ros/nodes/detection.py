"""detection: camera frames in, 2D detections (and RTM3D 3D boxes with CameraInfo) out.

Subscribes  image_topic        sensor_msgs/Image, or sensor_msgs/CompressedImage with ``compressed: true``
                               (default /camera/image_raw; latest-frame processing, older frames dropped
                               and counted)
            camera_info_topic  sensor_msgs/CameraInfo (default /camera/camera_info); the newest one is
                               cached and used for 3D when its frame_id and size match the image's
Publishes   ~/detections_2d    vision_msgs/Detection2DArray, every processed frame
            ~/detections_3d    vision_msgs/Detection3DArray in the camera optical frame, every processed
                               frame when the model has 3D heads (empty without usable CameraInfo)
            ~/markers          visualization_msgs/MarkerArray of the 3D boxes, while someone subscribes
            ~/annotated        sensor_msgs/Image bgr8 with boxes drawn, only while someone subscribes
All outputs carry the input image's header (stamp and frame), never now(). Message conventions:
perception_pkg/msgs/detections.py.

Bad input (unsupported encoding, truncated data, zero-size image, undecodable JPEG, malformed
CameraInfo) is counted as ``malformed`` in /diagnostics and skipped; frames processed without usable
CameraInfo are counted as ``no_camera_info`` / ``camera_info_mismatch``. A missing or unusable model card
stops the node at start-up with a ConfigError naming the card.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from vision_msgs.msg import Detection2DArray, Detection3DArray
from visualization_msgs.msg import MarkerArray

from perception_pkg.detection.detector import Detector
from perception_pkg.engines.select import BACKENDS
from perception_pkg.msgs import (
    CameraModel,
    MessageFactory,
    MessageFormatError,
    array_to_image,
    camera_info_to_model,
    detection2d_array,
    detection3d_array,
)
from perception_pkg.replay.detection_pipeline import (
    DEFAULTS,
    NODE_NAME,
    camera_problem,
    image_message_to_bgr,
    load_detector,
)
from perception_pkg.ros.node_base import PerceptionNode
from perception_pkg.ros.params import ConfigError, declare
from perception_pkg.runtime.stats import NodeStats, StatsSnapshot
from perception_pkg.viz.detections import draw_detections
from perception_pkg.viz.markers import detection_markers


@dataclass
class DetectionSnapshot(StatsSnapshot):
    """The base counters plus the detection node's own."""

    no_camera_info: int = 0
    camera_info_mismatch: int = 0
    camera_info_status: str = ""
    last_detections: int = 0
    last_timings_ms: str = ""

    def as_pairs(self) -> list[tuple[str, str]]:
        return [
            *super().as_pairs(),
            ("no_camera_info", str(self.no_camera_info)),
            ("camera_info_mismatch", str(self.camera_info_mismatch)),
            ("camera_info_status", self.camera_info_status),
            ("last_detections", str(self.last_detections)),
            ("last_timings_ms", self.last_timings_ms),
        ]


class DetectionStats(NodeStats):
    """NodeStats with counters for frames that could not be lifted to 3D (the base /diagnostics code
    reports whatever the snapshot lists, so the node needs no diagnostics code of its own)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.no_camera_info = 0
        self.camera_info_mismatch = 0
        self.camera_info_status = ""
        self.last_detections = 0
        self.last_timings: dict[str, float] = {}

    def on_frame(self, camera_problem: str, detections: int, timings: dict[str, float]) -> None:
        with self._lock:
            if camera_problem.startswith("no CameraInfo"):
                self.no_camera_info += 1
            elif camera_problem:
                self.camera_info_mismatch += 1
            self.camera_info_status = camera_problem or "ok"
            self.last_detections = detections
            self.last_timings = dict(timings)

    def snapshot(self) -> DetectionSnapshot:
        base = super().snapshot()
        with self._lock:
            timings = " ".join(f"{k}={v * 1e3:.2f}" for k, v in self.last_timings.items())
            return DetectionSnapshot(
                **vars(base),
                no_camera_info=self.no_camera_info,
                camera_info_mismatch=self.camera_info_mismatch,
                camera_info_status=self.camera_info_status,
                last_detections=self.last_detections,
                last_timings_ms=timings,
            )


class DetectionNode(PerceptionNode):
    """``detector`` replaces the card-built one (tests, or an application that builds its own)."""

    def __init__(self, *, detector: Detector | None = None, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        d = DEFAULTS
        card = declare(
            self, "model_card", d["model_card"], "detection card.yaml; empty = shipped sim_detector"
        )
        backend = declare(self, "backend", d["backend"], "inference backend", choices=BACKENDS)
        threads = declare(
            self, "threads", d["threads"], "CPU threads for the engine (0 = default)", minimum=0
        )
        image_topic = declare(self, "image_topic", d["image_topic"], "camera image topic")
        self.compressed = declare(self, "compressed", d["compressed"], "image_topic is a CompressedImage")
        info_topic = declare(self, "camera_info_topic", d["camera_info_topic"], "CameraInfo for 3D boxes")
        threshold = declare(
            self, "score_threshold", d["score_threshold"], "drop detections below", minimum=0.0, maximum=1.0
        )
        lift_3d = declare(self, "lift_3d", d["lift_3d"], "solve 3D boxes when the model has 3D heads")
        out = {
            key: declare(self, key, d[key], f"output topic ({key.removesuffix('_topic')})")
            for key in ("detections_2d_topic", "detections_3d_topic", "markers_topic", "annotated_topic")
        }
        self.marker_lifetime_s = declare(
            self, "marker_lifetime_s", d["marker_lifetime_s"], "RViz marker lifetime (s)", minimum=0.0
        )
        if detector is None:
            try:
                detector = load_detector(
                    card, backend, threads=threads, score_threshold=threshold, lift_3d=lift_3d
                )
            except ValueError as exc:
                raise ConfigError(f"node '{NODE_NAME}': {exc}") from exc
        self.detector = detector
        self.lifts_3d = detector.has_3d and detector.lift_3d
        self.stats = DetectionStats(window=self.stats.window)
        self._types = MessageFactory.rclpy()
        self._camera: CameraModel | None = None
        self._markers_sent = 0
        self._pub_2d = self.create_publisher(Detection2DArray, out["detections_2d_topic"], self.output_qos)
        self._pub_3d = self._pub_markers = None
        if self.lifts_3d:
            self._pub_3d = self.create_publisher(
                Detection3DArray, out["detections_3d_topic"], self.output_qos
            )
            self._pub_markers = self.create_publisher(MarkerArray, out["markers_topic"], self.output_qos)
        self._pub_annotated = self.create_publisher(Image, out["annotated_topic"], self.output_qos)
        self.create_subscription(CameraInfo, info_topic, self._on_camera_info, self.input_qos)
        self.subscribe_input(CompressedImage if self.compressed else Image, image_topic)
        self.get_logger().info(
            f"{self.detector.card.name} on {_describe(self.detector)}: {image_topic}"
            f"{' (compressed)' if self.compressed else ''} -> {out['detections_2d_topic']}"
            f"{', 3D with ' + info_topic if self.lifts_3d else ''}"
        )

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self._camera = camera_info_to_model(msg)  # one reference swap: the worker reads it unlocked
        except MessageFormatError as exc:
            self.stats.on_malformed(f"camera_info: {exc}")
            self.get_logger().warning(
                f"skipped malformed CameraInfo: {exc}", throttle_duration_sec=self.log_throttle_s
            )

    def process(self, msg: Image | CompressedImage) -> None:
        image = image_message_to_bgr(msg, self.compressed)
        header = msg.header
        camera = self._camera
        problem = camera_problem(camera, header.frame_id, image.shape[:2])
        if problem:
            camera = None
        result = self.detector(image, camera)
        types = self._types
        self._pub_2d.publish(detection2d_array(result, header, types))
        if self._pub_3d is not None:
            self._pub_3d.publish(detection3d_array(result, header, types))
        if self._pub_markers is not None and self._pub_markers.get_subscription_count() > 0:
            self._pub_markers.publish(
                detection_markers(
                    result,
                    header,
                    types,
                    lifetime_s=self.marker_lifetime_s,
                    previous_count=self._markers_sent,
                )
            )
            self._markers_sent = len(result)
        if self._pub_annotated.get_subscription_count() > 0:  # drawing and a frame copy cost: only on demand
            drawn = draw_detections(image, result, camera)
            self._pub_annotated.publish(array_to_image(drawn, "bgr8", header, types))
        self.stats.on_frame(problem if self.lifts_3d else "", len(result), result.timings)


def _describe(detector: Detector) -> str:
    engine = detector.runner.engine
    return engine.describe() if hasattr(engine, "describe") else str(engine)


def main(args: list[str] | None = None) -> None:
    from perception_pkg.ros.launcher import run_nodes

    run_nodes([NODE_NAME], ros_args=args)
