"""Person keypoints for one camera frame: top-down crops around person boxes, or a bottom-up model.

The core of the pose node, replay pipeline, evaluation and benchmark: numpy only, no rclpy.

- **Top-down** cards (``resize.policy: topdown``, a decoder returning keypoints: argmax, integral, mass
  displacement ...): every box of the frame becomes one crop, and all crops go through the engine in one
  batched call (:class:`~perception_pkg.engines.runner.ModelRunner` splits only when the card's maximum
  batch is smaller than the number of people). Pose score = mean keypoint score x box score (RSN).
- **Bottom-up** cards (a decoder returning :class:`Detections` with ``keypoints``, e.g. YOLOv8-pose or
  mixture-density offsets): boxes are not needed; the model's own boxes and scores are used, and a
  per-keypoint spread may come in ``Detections.extras["keypoint_sigma"]``.

Coordinates are the stack's continuous image coordinates (the card convention: pixel column ``j`` spans
``[j, j + 1)``). ROS messages put the centre of the first pixel at 0; the converters in
:mod:`perception_pkg.msgs.people` apply that half-pixel shift, nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from perception_pkg.cards import load_card
from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.types import Detections, Keypoints
from perception_pkg.engines.base import Engine
from perception_pkg.engines.runner import ModelRunner
from perception_pkg.paths import models_dir

DEFAULT_POSE = "sim_pose/card.yaml"
SIGMA_EXTRA = "keypoint_sigma"


def default_pose_card() -> Path:
    """The top-down pose model we ship, trained on the simulator (``models/sim_pose``)."""
    return models_dir() / DEFAULT_POSE


@dataclass(frozen=True)
class PoseResult:
    """People of one image: ``keypoints`` (N, K, 2) image px, ``scores`` (N, K), ``sigmas`` (N, K) or None.

    ``boxes`` (N, 4) xyxy and ``box_scores`` (N,) are the person boxes the crops came from (the model's
    own for bottom-up cards); ``person_scores`` (N,) = mean keypoint score x box score. ``timings`` are
    seconds per stage (``preprocess``, ``inference``, ``decode``).
    """

    keypoints: NDArray[np.float64]
    scores: NDArray[np.float64]
    sigmas: NDArray[np.float64] | None
    person_scores: NDArray[np.float64]
    boxes: NDArray[np.float64]
    box_scores: NDArray[np.float64]
    timings: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    @classmethod
    def empty(cls, num_keypoints: int = 17, timings: dict[str, float] | None = None) -> PoseResult:
        return cls(
            np.zeros((0, num_keypoints, 2)),
            np.zeros((0, num_keypoints)),
            None,
            np.zeros(0),
            np.zeros((0, 4)),
            np.zeros(0),
            dict(timings or {}),
        )


def pose_scores(keypoint_scores: NDArray, box_scores: NDArray) -> NDArray[np.float64]:
    """RSN's person score: mean keypoint score x box score, one per person."""
    if keypoint_scores.shape[0] == 0:
        return np.zeros(0)
    return keypoint_scores.mean(axis=1) * box_scores


def as_boxes(
    boxes: ArrayLike, box_scores: ArrayLike | None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Validated (N, 4) xyxy boxes and (N,) scores (1.0 when not given); ValueError on bad input."""
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4) xyxy, got shape {b.shape}")
    s = np.ones(len(b)) if box_scores is None else np.asarray(box_scores, dtype=np.float64).reshape(-1)
    if s.shape != (len(b),):
        raise ValueError(f"box_scores must be ({len(b)},), got shape {s.shape}")
    if not (np.isfinite(b).all() and np.isfinite(s).all()):
        raise ValueError("boxes and box_scores must be finite")
    if np.any(b[:, 2:] <= b[:, :2]):
        raise ValueError("boxes must have x1 > x0 and y1 > y0")
    return b, s


class PoseEstimator:
    """``estimator(image_bgr, boxes, box_scores)`` -> :class:`PoseResult`.

    ``max_people`` keeps the highest-scoring boxes (bounds the engine batch on a crowded frame).
    Bottom-up cards ignore ``boxes``; ``score_threshold`` drops their people below it.
    """

    def __init__(
        self,
        card: ModelCard,
        engine: Engine | None = None,
        backend: str = "auto",
        max_people: int | None = None,
        score_threshold: float = 0.0,
        **engine_options: Any,
    ) -> None:
        if card.task != "pose":
            raise ValueError(
                f"{card.name}: a pose estimator needs a pose card, this one is for {card.task!r}"
            )
        self.card = card
        self.runner = ModelRunner(card, engine=engine, backend=backend, **engine_options)
        kind = self.runner.decoder.result
        self.top_down = self.runner.preprocessor.is_topdown
        if self.top_down and kind != "keypoints":
            raise ValueError(f"{card.name}: a top-down card needs a keypoint decoder, {kind!r} given")
        if not self.top_down and kind != "detections":
            raise ValueError(
                f"{card.name}: a whole-image pose card needs a decoder returning detections with keypoints"
            )
        self.num_keypoints = len(card.keypoints) if card.keypoints else 17
        self.max_people = max_people
        self.score_threshold = float(score_threshold)

    @classmethod
    def from_card(
        cls, card: str | Path | ModelCard | None = None, backend: str = "auto", **kwargs: Any
    ) -> PoseEstimator:
        """From a card object or path (default: the shipped simulator model, ``models/sim_pose``)."""
        if not isinstance(card, ModelCard):
            card = load_card(default_pose_card() if card is None else card)
        return cls(card, backend=backend, **kwargs)

    @property
    def max_batch(self) -> int:
        return self.runner.max_batch

    def __call__(
        self,
        image: NDArray[np.uint8],
        boxes: ArrayLike | None = None,
        box_scores: ArrayLike | None = None,
    ) -> PoseResult:
        if not self.top_down:
            return self._bottom_up(image)
        b, s = as_boxes(np.zeros((0, 4)) if boxes is None else boxes, box_scores)
        if self.max_people is not None and len(b) > self.max_people:
            keep = np.argsort(-s, kind="stable")[: self.max_people]
            b, s = b[keep], s[keep]
        if len(b) == 0:  # nothing to crop: no engine call at all
            return PoseResult.empty(self.num_keypoints, {"preprocess": 0.0, "inference": 0.0, "decode": 0.0})
        kps: Keypoints
        kps, timings = self.runner.timed(image, b)  # all crops in one call (chunked only above max batch)
        return PoseResult(kps.xy, kps.scores, kps.sigmas, pose_scores(kps.scores, s), b, s, timings)

    def _bottom_up(self, image: NDArray[np.uint8]) -> PoseResult:
        dets: Detections
        dets, timings = self.runner.timed(image)
        if dets.keypoints is None:
            raise ValueError(f"{self.card.name}: decoder {self.card.decoder.type!r} returned no keypoints")
        if self.score_threshold > 0 and len(dets):
            dets = dets.select(dets.scores >= self.score_threshold)
        if self.max_people is not None and len(dets) > self.max_people:
            dets = dets.select(np.arange(self.max_people))  # rows are sorted by descending score
        kp = dets.keypoints
        sig = dets.extras.get(SIGMA_EXTRA)  # already in image pixels (Detections.transformed scales it)
        scores = kp[..., 2]
        return PoseResult(
            kp[..., :2], scores, sig, pose_scores(scores, dets.scores), dets.boxes, dets.scores, timings
        )
