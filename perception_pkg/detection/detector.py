"""One camera frame in, 2D detections (and 3D boxes where the model has RTM3D heads) out.

The core of the detection node, replay pipeline, evaluation and benchmark: numpy only, no rclpy.
Any detection card works (CenterNet, YOLOX, YOLOv8 ...); a card whose decoder returns the 9 projected
box vertices per object (``rtm3d``) also gets 3D boxes, solved per object against the camera's
projection matrix (:mod:`perception_pkg.geometry3d.lift`), when a camera model is given.

3D boxes are in the camera optical frame, KITTI layout ``[x, y, z, h, w, l, rotation_y]`` with ``(x, y,
z)`` the bottom-face centre (:mod:`perception_pkg.geometry3d.box3d`). The image must be rectified (or
undistorted) for the projection matrix to hold: subscribe to ``image_rect`` on a camera with distortion.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards import load_card
from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.types import Detections
from perception_pkg.engines.base import Engine
from perception_pkg.engines.runner import ModelRunner
from perception_pkg.geometry3d.camera import CameraModel
from perception_pkg.geometry3d.lift import lift_boxes3d
from perception_pkg.paths import models_dir

DEFAULT_DETECTOR = "sim_detector/card.yaml"


def default_detector_card() -> Path:
    """The detector we ship, trained on the simulator (``models/sim_detector``)."""
    return models_dir() / DEFAULT_DETECTOR


@dataclass(frozen=True)
class DetectionResult:
    """Detections of one image in its pixel frame, with optional 3D boxes aligned row by row.

    ``boxes3d`` (N, 7) is None when the model has no 3D heads or no camera was given; rows of classes
    without 3D (or whose solve failed) are NaN. ``scores3d`` (N,) ranks the 3D boxes: the detection
    score times the mean confidence of the 9 vertices that fixed the box (ours: on held-out simulator
    cars it separates boxes with 3D IoU >= 0.5 from the rest with ROC AUC 0.83, the 2D score alone 0.70).
    ``timings`` are seconds per stage.
    """

    detections: Detections
    class_names: tuple[str, ...]
    boxes3d: NDArray[np.float64] | None = None
    reprojection_px: NDArray[np.float64] | None = None
    scores3d: NDArray[np.float64] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.detections)

    def labels(self) -> list[str]:
        names = self.class_names
        return [names[c] if 0 <= c < len(names) else str(c) for c in self.detections.class_ids.tolist()]


class Detector:
    """``detector(image_bgr, camera)`` -> :class:`DetectionResult`.

    ``score_threshold`` drops detections below it after decoding (the card's decoder threshold still
    applies first); ``lift_3d`` turns the 3D solve off for speed.
    """

    def __init__(
        self,
        card: ModelCard,
        engine: Engine | None = None,
        backend: str = "auto",
        score_threshold: float = 0.0,
        lift_3d: bool = True,
        **engine_options: Any,
    ) -> None:
        if card.task != "detection":
            raise ValueError(f"{card.name}: a detector needs a detection card, this one is for {card.task!r}")
        self.card = card
        self.runner = ModelRunner(card, engine=engine, backend=backend, **engine_options)
        if self.runner.decoder.result != "detections":
            raise ValueError(f"{card.name}: decoder {card.decoder.type!r} does not return detections")
        self.class_names = tuple(card.classes)
        self.score_threshold = float(score_threshold)
        self.lift_3d = lift_3d

    @classmethod
    def from_card(cls, card: str | Path | ModelCard | None = None, **kwargs: Any) -> Detector:
        """From a card object or path (default: the shipped simulator detector)."""
        if not isinstance(card, ModelCard):
            card = load_card(default_detector_card() if card is None else card)
        return cls(card, **kwargs)

    @property
    def has_3d(self) -> bool:
        return getattr(self.runner.decoder, "gives_3d", False) is True

    def __call__(self, image: NDArray[np.uint8], camera: CameraModel | None = None) -> DetectionResult:
        dets: Detections
        dets, timings = self.runner.timed(image)
        if self.score_threshold > 0 and len(dets):
            dets = dets.select(dets.scores >= self.score_threshold)
        t3 = time.perf_counter()
        boxes3d = reproj = scores3d = None
        if self.has_3d and self.lift_3d and camera is not None:
            rel = getattr(self.runner.decoder, "depth_prior_rel_std", None)
            boxes3d, reproj = lift_boxes3d(dets, camera, rel)
            if dets.keypoints is not None and dets.keypoints.shape[1] == 9:
                scores3d = dets.scores * dets.keypoints[:, :, 2].mean(axis=1)
            timings["lift_3d"] = time.perf_counter() - t3
        return DetectionResult(dets, self.class_names, boxes3d, reproj, scores3d, timings)
