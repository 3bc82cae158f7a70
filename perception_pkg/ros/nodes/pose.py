"""pose: person keypoints (COCO-17) for every camera frame.

Subscribes  ~image_topic       sensor_msgs/Image, or CompressedImage with ``compressed: true``
            ~detections_topic  vision_msgs/Detection2DArray (boxes of class ``person_class``), matched
                               to the image by exact stamp with a bounded wait (``match_max_wait_s``)
                               and buffer (``match_buffer``). Not subscribed when the node runs a
                               detector itself (``detector_card``) or the pose card is bottom-up.
Publishes   ~output_topic      perception_msgs/PersonArray, header = the image's (stamp and frame)
            ~markers_topic     visualization_msgs/MarkerArray: skeletons in the image plane (see
                               perception_pkg.msgs.people)
            ~annotated_topic   sensor_msgs/Image bgr8 with skeletons drawn, only while subscribed

All crops of a frame go through the engine in one batched call. /diagnostics adds the matcher's counts
(matched, unmatched, expired, evicted) and people published to the common ones (malformed counts bad
images and detection arrays alike).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from diagnostic_msgs.msg import KeyValue
from perception_msgs.msg import PersonArray
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray
from visualization_msgs.msg import MarkerArray

from perception_pkg.engines.select import BACKENDS
from perception_pkg.msgs import (
    MessageFactory,
    MessageFormatError,
    array_to_image,
    stamp_to_ns,
)
from perception_pkg.pose import PoseEstimator, StampMatcher
from perception_pkg.pose.frames import PoseFrameProcessor, PoseSettings
from perception_pkg.pose.matcher import Match
from perception_pkg.ros.node_base import PerceptionNode
from perception_pkg.ros.params import ConfigError, declare

_D = PoseSettings()


class _WithExtraValues:
    """The /diagnostics publisher, appending this node's own counters to each status it publishes
    (the base class builds the status; this keeps its logic in one place)."""

    def __init__(self, pub: Any, extra: Any) -> None:
        self._pub = pub
        self._extra = extra

    def publish(self, msg: Any) -> None:
        pairs = [KeyValue(key=k, value=v) for k, v in self._extra()]
        for status in msg.status:
            status.values = list(status.values) + pairs
        self._pub.publish(msg)


class PoseNode(PerceptionNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("pose", **kwargs)
        image_topic = declare(self, "image_topic", "/camera/image_raw", "camera image")
        compressed = declare(self, "compressed", False, "image_topic carries sensor_msgs/CompressedImage")
        det_topic = declare(
            self,
            "detections_topic",
            "/detection/detections_2d",
            "vision_msgs/Detection2DArray with person boxes",
        )
        out_topic = declare(self, "output_topic", "/pose/people", "perception_msgs/PersonArray")
        markers_topic = declare(self, "markers_topic", "/pose/markers", "skeleton MarkerArray")
        annotated_topic = declare(self, "annotated_topic", "/pose/image_annotated", "debug image")
        pose_card = declare(self, "pose_card", "", "pose model card; empty: models/sim_pose/card.yaml")
        detector_card = declare(
            self,
            "detector_card",
            "",
            "run this detector for person boxes instead of subscribing ('default': shipped)",
        )
        backend = declare(self, "backend", "auto", "engine backend", choices=list(BACKENDS))
        max_people = declare(self, "max_people", 20, "most people per frame (highest box scores)", minimum=1)
        max_wait = declare(
            self, "match_max_wait_s", 0.5, "longest wait for the partner of an image", minimum=1e-3
        )
        buffer = declare(self, "match_buffer", 30, "images (and detection arrays) kept waiting", minimum=1)
        settings = PoseSettings(
            person_class=declare(self, "person_class", _D.person_class, "class name of people in detections"),
            min_box_score=declare(self, "min_box_score", _D.min_box_score, "ignore boxes below", minimum=0.0),
            min_box_size=declare(
                self, "min_box_size", _D.min_box_size, "ignore smaller boxes (px)", minimum=0.0
            ),
            keypoint_threshold=declare(
                self, "keypoint_threshold", _D.keypoint_threshold, "draw keypoints above"
            ),
            marker_pixel_size=declare(
                self, "marker_pixel_size", _D.marker_pixel_size, "metres per pixel in markers", minimum=1e-9
            ),
            compressed=compressed,
        )
        try:
            estimator = PoseEstimator.from_card(pose_card or None, backend=backend, max_people=max_people)
            detector = None
            if detector_card and estimator.top_down:
                from perception_pkg.detection import Detector

                detector = Detector.from_card(
                    None if detector_card == "default" else detector_card, backend=backend, lift_3d=False
                )
        except (OSError, ValueError) as exc:  # CardError is a ValueError
            raise ConfigError(f"node 'pose': {exc}") from exc
        self.frames = PoseFrameProcessor(
            estimator, settings, MessageFactory.rclpy(), MessageFactory.rclpy(), detector
        )
        self._types = self.frames.types
        self.people_published = 0
        self._pub = self.create_publisher(PersonArray, out_topic, self.output_qos)
        self._markers = self.create_publisher(MarkerArray, markers_topic, self.output_qos)
        self._annotated = self.create_publisher(Image, annotated_topic, self.output_qos)
        self._diag_pub = _WithExtraValues(self._diag_pub, self._extra_diagnostics)
        image_type = CompressedImage if settings.compressed else Image
        self.matcher: StampMatcher[Any, Any] | None = None
        if not self.frames.needs_detections:
            self.subscribe_input(image_type, image_topic)
            return
        self.matcher = StampMatcher(max_wait, buffer)
        self.create_subscription(image_type, image_topic, self._on_image, self.input_qos)
        # detections are small and must not be lost while an image waits: keep as many as the buffer
        det_qos = type(self.input_qos)(
            history=self.input_qos.history, depth=buffer, reliability=self.input_qos.reliability,
            durability=self.input_qos.durability,
        )  # fmt: skip
        self.create_subscription(Detection2DArray, det_topic, self._on_detections, det_qos)
        # the base starts its worker in subscribe_input; with two inputs paired here, start it directly
        self._worker = threading.Thread(target=self._work, name="pose-worker", daemon=True)
        self._worker.start()

    # --- inputs --------------------------------------------------------------------------------------
    def _stamp(self, msg: Any) -> int | None:
        try:
            return stamp_to_ns(msg.header)
        except (MessageFormatError, AttributeError) as exc:
            self.stats.on_malformed(f"header: {exc}")
            return None

    def _on_image(self, msg: Any) -> None:
        now = time.monotonic()
        self.stats.on_received(now)
        stamp = self._stamp(msg)
        if stamp is not None and self.matcher is not None:
            self._hand_over(self.matcher.add_image(stamp, msg, now))

    def _on_detections(self, msg: Any) -> None:
        stamp = self._stamp(msg)
        if stamp is not None and self.matcher is not None:
            self._hand_over(self.matcher.add_detections(stamp, msg, time.monotonic()))

    def _hand_over(self, match: Match | None) -> None:
        # latency is measured from the image's receipt; a pair replaced in the slot counts as dropped
        if match is not None and self._slot.put((match, match.arrived)):
            self.stats.on_dropped()

    # --- work ----------------------------------------------------------------------------------------
    def process(self, item: Any) -> None:
        image_msg, det_msg = (item.image, item.detections) if isinstance(item, Match) else (item, None)
        out = self.frames(image_msg, det_msg)
        self._pub.publish(out.people)
        self._markers.publish(out.markers)
        self.people_published += len(out.result)
        if self._annotated.get_subscription_count() > 0:  # drawing costs; only for someone watching
            from perception_pkg.viz.skeleton import draw_skeletons

            r = out.result
            drawn = draw_skeletons(
                out.image, r.keypoints, r.scores, r.boxes, threshold=self.frames.settings.keypoint_threshold
            )
            self._annotated.publish(array_to_image(drawn, "bgr8", image_msg.header, self._types))

    def _extra_diagnostics(self) -> list[tuple[str, str]]:
        pairs = [("people_published", str(self.people_published))]
        if self.matcher is not None:
            self.matcher.expire(time.monotonic())  # so a stalled partner stream still shows up as expired
            c = self.matcher.counts
            waiting = self.matcher.pending()
            pairs += [
                ("matched", str(c.matched)),
                ("unmatched", str(c.unmatched)),
                ("expired", str(c.expired)),
                ("evicted", str(c.evicted_image + c.evicted_detections)),
                ("waiting_images", str(waiting[0])),
                ("waiting_detections", str(waiting[1])),
            ]
        return pairs


def main(args: list[str] | None = None) -> None:
    from perception_pkg.ros.launcher import run_nodes

    run_nodes(["pose"], ros_args=args)
