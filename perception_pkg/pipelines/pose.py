"""pose: person keypoints (COCO-17) for every camera frame.

Inputs   ``image``       sensor_msgs/Image, or CompressedImage with ``compressed: true``
         ``detections``  vision_msgs/Detection2DArray (boxes of class ``person_class``), paired with the
                         image by exact header stamp with a bounded wait (``match_max_wait_s``) and buffer
                         (``match_buffer``). Not an input when the pipeline runs a detector itself
                         (``detector_card``) or the pose card is bottom-up.
Outputs  ``people``      perception_msgs/PersonArray, header = the image's (stamp and frame)
         ``markers``     visualization_msgs/MarkerArray: skeletons in the image plane (viz/markers.py)
         ``annotated``   bgr8 Image with the skeletons drawn (on demand)

All crops of a frame go through the engine in one batched call. Boxes below ``min_box_score`` or
smaller than ``min_box_size`` pixels on a side are dropped before cropping. The wait for a partner is
measured on the caller's clock: monotonic on a live graph, bag time in replay (a replay faster than real
time must not expire pairs).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.detection import Detector, load_detector
from perception_pkg.engines.select import BACKENDS
from perception_pkg.msgs import (
    array_to_image,
    compressed_to_array,
    detections_to_person_boxes,
    image_to_bgr,
    pose_to_person_array,
)
from perception_pkg.msgs.factory import MessageFactory
from perception_pkg.pipelines.base import Job, Pipeline, Port, Wanted, matched_jobs
from perception_pkg.pose.estimator import PoseEstimator, PoseResult
from perception_pkg.pose.matcher import StampMatcher
from perception_pkg.runtime.settings import ConfigError, setting
from perception_pkg.viz.markers import skeleton_markers
from perception_pkg.viz.skeleton import draw_skeletons

log = logging.getLogger("perception_pkg.pipelines.pose")

NODE_NAME = "pose"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
DETECTIONS = "vision_msgs/msg/Detection2DArray"


@dataclass(frozen=True)
class PoseSettings:
    image_topic: str = setting("/camera/image_raw", "camera image topic")
    compressed: bool = setting(False, "image_topic carries sensor_msgs/CompressedImage")
    detections_topic: str = setting(
        "/detection/detections_2d", "vision_msgs/Detection2DArray with person boxes, paired by exact stamp"
    )
    person_class: str = setting("person", "class name of people in the detections")
    detector_card: str = setting(
        "", "run this detector for person boxes instead of subscribing ('default': the shipped one)"
    )
    pose_card: str = setting("", "pose model card; empty: models/sim_pose/card.yaml")
    backend: str = setting("auto", "inference backend", choices=BACKENDS)
    output_topic: str = setting("/pose/people", "perception_msgs/PersonArray")
    markers_topic: str = setting("/pose/markers", "skeleton MarkerArray")
    annotated_topic: str = setting("/pose/image_annotated", "annotated image, drawn only while subscribed")
    min_box_score: float = setting(0.3, "ignore person boxes below this score", minimum=0.0)
    min_box_size: float = setting(4.0, "ignore smaller person boxes (px)", minimum=0.0)
    max_people: int = setting(20, "most people per frame (highest box scores)", minimum=1)
    keypoint_threshold: float = setting(0.2, "markers and the annotated image draw keypoints above")
    marker_pixel_size: float = setting(0.001, "skeleton markers: metres per image pixel", minimum=1e-9)
    match_max_wait_s: float = setting(0.5, "longest wait for the partner of an image (s)", minimum=1e-3)
    match_buffer: int = setting(30, "images (and detection arrays) kept waiting", minimum=1)


@dataclass
class FrameOutput:
    result: PoseResult
    people: Any  # perception_msgs/PersonArray
    markers: Any  # visualization_msgs/MarkerArray
    image: NDArray[np.uint8]  # the decoded frame (BGR), for the annotated image
    timings: dict[str, float] = field(default_factory=dict)


def select_boxes(
    boxes: NDArray, scores: NDArray, min_score: float, min_size: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The boxes at least ``min_score`` sure and ``min_size`` pixels wide and high."""
    wh = boxes[:, 2:] - boxes[:, :2]
    keep = (scores >= min_score) & (wh >= min_size).all(axis=1)
    return boxes[keep], scores[keep]


class PoseFrames:
    """One frame at the message level: ``frames(image_msg, detections_msg=None)`` -> :class:`FrameOutput`.
    Used by the pipeline and by the benchmark, so both time the same code."""

    def __init__(
        self,
        estimator: PoseEstimator,
        settings: PoseSettings,
        types: MessageFactory,
        detector: Detector | None = None,
    ) -> None:
        self.estimator = estimator
        self.settings = settings
        self.types = types
        self.detector = detector

    @property
    def needs_detections(self) -> bool:
        """Whether boxes must come from a detections topic (top-down card, no detector of its own)."""
        return self.estimator.top_down and self.detector is None

    def to_bgr(self, image_msg: Any) -> NDArray[np.uint8]:
        return compressed_to_array(image_msg) if self.settings.compressed else image_to_bgr(image_msg)

    def person_boxes(
        self, image: NDArray[np.uint8], detections_msg: Any
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]] | tuple[None, None]:
        s = self.settings
        if detections_msg is not None:
            boxes, scores = detections_to_person_boxes(detections_msg, s.person_class)
        elif self.detector is not None and self.estimator.top_down:
            det = self.detector(image)
            rows = np.array([lab == s.person_class for lab in det.labels()], dtype=bool)
            boxes, scores = det.detections.boxes[rows], det.detections.scores[rows]
        else:
            return None, None
        return select_boxes(boxes, scores, s.min_box_score, s.min_box_size)

    def __call__(self, image_msg: Any, detections_msg: Any = None) -> FrameOutput:
        t0 = time.perf_counter()
        image = self.to_bgr(image_msg)
        t1 = time.perf_counter()
        boxes, scores = self.person_boxes(image, detections_msg)
        t2 = time.perf_counter()
        result = self.estimator(image, boxes, scores)
        t3 = time.perf_counter()
        header = image_msg.header
        people = pose_to_person_array(result, header, self.types)
        markers = skeleton_markers(
            header,
            self.types,
            result.keypoints,
            result.scores,
            threshold=self.settings.keypoint_threshold,
            pixel_size=self.settings.marker_pixel_size,
        )
        t4 = time.perf_counter()
        timings = {"conversion": t1 - t0, "boxes": t2 - t1, **result.timings, "message_build": t4 - t3}
        return FrameOutput(result, people, markers, image, timings)


class PosePipeline(Pipeline):
    name = NODE_NAME

    def __init__(self, settings: PoseSettings, types: MessageFactory, frames: PoseFrames) -> None:
        super().__init__(types)
        self.settings = s = settings
        self.frames = frames
        self.inputs = [Port("image", s.image_topic, COMPRESSED if s.compressed else IMAGE)]
        self.matcher: StampMatcher[Any, Any] | None = None
        if frames.needs_detections:
            # detections are small and must not be lost while an image waits: keep as many as the buffer
            self.inputs.append(Port("detections", s.detections_topic, DETECTIONS, depth=s.match_buffer))
            self.matcher = StampMatcher(s.match_max_wait_s, s.match_buffer)
        self.outputs = [
            Port("people", s.output_topic, "perception_msgs/msg/PersonArray"),
            Port("markers", s.markers_topic, "visualization_msgs/msg/MarkerArray"),
            Port("annotated", s.annotated_topic, IMAGE, on_demand=True, debug=True),
        ]
        self.people_published = 0

    def accept(self, key: str, msg: Any, now_s: float) -> list[Job]:
        if self.matcher is None:
            return [Job(msg, arrived=now_s)]
        return matched_jobs(self.matcher, key == "image", msg, now_s)

    def run(self, job: Job, wanted: Wanted | None = None) -> list[tuple[str, Any]]:
        out = self.frames(job.msg, job.partner)
        self.people_published += len(out.result)
        outputs: list[tuple[str, Any]] = [("people", out.people), ("markers", out.markers)]
        if wanted is None or wanted("annotated"):  # drawing costs; only for someone watching
            r = out.result
            drawn = draw_skeletons(
                out.image, r.keypoints, r.scores, r.boxes, threshold=self.settings.keypoint_threshold
            )
            outputs.append(("annotated", array_to_image(drawn, "bgr8", job.msg.header, self.types)))
        return outputs

    def diagnostics(self, now_s: float | None = None) -> list[tuple[str, str]]:
        pairs = [("people_published", str(self.people_published))]
        if self.matcher is not None:
            if now_s is not None:  # so a stalled partner stream still shows up as expired
                self.matcher.expire(now_s)
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


def create(settings: PoseSettings, types: MessageFactory, *, live: bool) -> PosePipeline:
    """The pipeline of these settings; a card that cannot be loaded is a ConfigError naming it."""
    del live  # pairing by stamp works the same on a live graph and on a bag
    s = settings
    try:
        estimator = PoseEstimator.from_card(s.pose_card or None, backend=s.backend, max_people=s.max_people)
        detector = None
        if s.detector_card and estimator.top_down:
            detector = load_detector(
                s.detector_card, s.backend, lift_3d=False, where=f"parameter '{NODE_NAME}.detector_card'"
            )
    except (OSError, ValueError) as exc:  # CardError is a ValueError
        raise ConfigError(f"node '{NODE_NAME}': {exc}") from exc
    frames = PoseFrames(estimator, s, types, detector)
    if frames.needs_detections:
        log.info("pose: person boxes from %s, paired with %s by stamp", s.detections_topic, s.image_topic)
    return PosePipeline(s, types, frames)
