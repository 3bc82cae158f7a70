"""The pose node's work on a bag: images + person detections in, PersonArray and skeleton markers out.

Runs what the live ``pose`` node runs (:class:`perception_pkg.pose.frames.PoseFrameProcessor`, the
same message builders, the node's section of the params file) on rosbags messages. Images and
Detection2DArrays are paired by exact header stamp with the node's :class:`StampMatcher`; the wait is
measured in bag time. Person boxes come from ``detections_topic`` (default: the detection node's
output, ``/detection/detections_2d``; a simulator bag has ``/ground_truth/detections_2d``), or from a
detector run on each frame when ``detector_card`` is set ("default": the shipped one), or from the
model itself for bottom-up cards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from perception_pkg.msgs import MessageFactory, stamp_to_ns
from perception_pkg.pose import PoseEstimator, StampMatcher
from perception_pkg.pose.frames import PoseFrameProcessor, PoseSettings

log = logging.getLogger("perception_pkg.replay.pose")

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
DETECTIONS = "vision_msgs/msg/Detection2DArray"
PEOPLE = "perception_msgs/msg/PersonArray"
MARKERS = "visualization_msgs/msg/MarkerArray"

# the node's defaults for the keys replay reads (the node declares them with the same values)
DEFAULTS: dict[str, Any] = {
    "image_topic": "/camera/image_raw",
    "detections_topic": "/detection/detections_2d",
    "output_topic": "/pose/people",
    "markers_topic": "/pose/markers",
    "pose_card": "",
    "detector_card": "",
    "backend": "auto",
    "max_people": 20,
    "match_max_wait_s": 0.5,
    "match_buffer": 30,
}


@dataclass
class PosePipeline:
    frames: PoseFrameProcessor
    matcher: StampMatcher[Any, Any]
    image_topic: str
    detections_topic: str
    output_topic: str
    markers_topic: str
    name: str = "pose"
    frames_out: int = field(default=0)

    def wants(self, topic: str, msgtype: str) -> bool:
        image_type = COMPRESSED if self.frames.settings.compressed else IMAGE
        if topic == self.image_topic and msgtype == image_type:
            return True
        return self.frames.needs_detections and topic == self.detections_topic and msgtype == DETECTIONS

    def outputs_for(self, topic: str) -> list[tuple[str, str]]:
        return [(self.output_topic, PEOPLE), (self.markers_topic, MARKERS)]

    def on_message(self, topic: str, msg: Any, stamp_ns: int) -> list[tuple[str, Any]]:
        if not self.frames.needs_detections:
            return self._run(msg, None)
        now = stamp_ns * 1e-9  # bag time: a replay faster than real time must not expire pairs
        stamp = stamp_to_ns(msg.header)
        if topic == self.image_topic:
            match = self.matcher.add_image(stamp, msg, now)
        else:
            match = self.matcher.add_detections(stamp, msg, now)
        return [] if match is None else self._run(match.image, match.detections)

    def _run(self, image_msg: Any, detections_msg: Any) -> list[tuple[str, Any]]:
        out = self.frames(image_msg, detections_msg)
        self.frames_out += 1
        return [(self.output_topic, out.people), (self.markers_topic, out.markers)]


def make_pose_pipeline(types: MessageFactory, params: dict[str, Any]) -> PosePipeline:
    """A pose pipeline from the ``pose`` node's ros__parameters (missing keys take the node's defaults)."""
    p = {**DEFAULTS, **params}
    estimator = PoseEstimator.from_card(
        p["pose_card"] or None, backend=p["backend"], max_people=p["max_people"]
    )
    detector = None
    if p["detector_card"] and estimator.top_down:
        from perception_pkg.detection import Detector

        card = None if p["detector_card"] == "default" else p["detector_card"]
        detector = Detector.from_card(card, backend=p["backend"], lift_3d=False)
    frames = PoseFrameProcessor(estimator, PoseSettings.from_params(p), types, types, detector)
    if frames.needs_detections:
        log.info(
            "pose: person boxes from %s, paired with %s by stamp", p["detections_topic"], p["image_topic"]
        )
    return PosePipeline(
        frames,
        StampMatcher(float(p["match_max_wait_s"]), int(p["match_buffer"])),
        p["image_topic"],
        p["detections_topic"],
        p["output_topic"],
        p["markers_topic"],
    )
