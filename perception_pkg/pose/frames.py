"""One frame of the pose capability at the message level: image (+ person detections) messages in,
PersonArray + skeleton MarkerArray out. Shared by the node, the replay pipeline and the benchmark so
the three run the same code; no rclpy (message classes come from a :class:`MessageFactory`).

Person boxes come from a ``vision_msgs/Detection2DArray`` (one class, by name), from a detector run
on the frame (``detector``), or from nowhere for bottom-up cards. Boxes below ``min_box_score`` or
smaller than ``min_box_size`` pixels on a side are dropped before cropping.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.msgs import (
    MessageFactory,
    compressed_to_array,
    detections_to_person_boxes,
    image_to_bgr,
    pose_to_person_array,
)
from perception_pkg.pose.estimator import PoseEstimator, PoseResult
from perception_pkg.viz.markers import skeleton_markers


@dataclass(frozen=True)
class PoseSettings:
    """Per-frame options (the node's parameters of the same names)."""

    person_class: str = "person"
    min_box_score: float = 0.3
    min_box_size: float = 4.0
    keypoint_threshold: float = 0.2  # markers and the annotated image draw keypoints at least this sure
    marker_pixel_size: float = 1e-3  # metres per image pixel for the image-plane skeleton markers
    compressed: bool = False  # the image input is sensor_msgs/CompressedImage

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> PoseSettings:
        """From a node's ros__parameters (unknown keys ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in names})


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


class PoseFrameProcessor:
    """``processor(image_msg, detections_msg=None)`` -> :class:`FrameOutput` (header = the image's)."""

    def __init__(
        self,
        estimator: PoseEstimator,
        settings: PoseSettings,
        factory: MessageFactory,
        types: MessageFactory,
        detector: Any = None,
    ) -> None:
        self.estimator = estimator
        self.settings = settings
        self.factory = factory
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
        people = pose_to_person_array(result, header, self.factory)
        markers = skeleton_markers(
            header,
            self.factory,
            result.keypoints,
            result.scores,
            threshold=self.settings.keypoint_threshold,
            pixel_size=self.settings.marker_pixel_size,
        )
        t4 = time.perf_counter()
        timings = {"conversion": t1 - t0, "boxes": t2 - t1, **result.timings, "message_build": t4 - t3}
        return FrameOutput(result, people, markers, image, timings)
