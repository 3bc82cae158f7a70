"""YOLOv8-style outputs, channels first: detection ``[B, 4 + C, N]`` and pose ``[B, 4 + C + 3K, N]``.

Rows: ``cx, cy, w, h`` in input pixels, then C class scores (already sigmoid in Ultralytics exports), then
for pose K keypoints as ``x, y, visibility`` (x, y decoded in the graph, visibility already sigmoid).
Ultralytics pose models have C = 1 (person), so the standard pose output is ``[B, 56, N]`` for K = 17.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.errors import CardError
from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.base import DETECTION_PARAMS, Decoder, DetectionFilter, sigmoid, xywh_to_xyxy
from perception_pkg.decoders.types import Detections


class Yolov8Decoder(Decoder):
    roles = ("predictions",)
    params: ClassVar[Mapping[str, Any]] = {**DETECTION_PARAMS, "scores_activated": True}
    result = "detections"
    with_keypoints = False

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        self.filter = DetectionFilter(self)
        self.activated = self.flag("scores_activated")
        self.num_keypoints = 0
        self.num_classes: int | None = len(card.classes) or None
        shape = self.output_shape("predictions")
        rows = shape[1] if shape is not None and isinstance(shape[1], int) else None
        self._check_rows(rows)

    def _check_rows(self, rows: int | None) -> None:
        if rows is None:
            return
        if self.num_classes is None:
            self.num_classes = rows - 4
        if rows != 4 + self.num_classes or self.num_classes < 1:
            raise CardError(
                "classes",
                f"{self.num_classes} classes need 4 + {self.num_classes} output rows, the output has {rows}",
                self._source,
            )

    def _split(self, pred: NDArray) -> tuple[NDArray, NDArray, NDArray | None]:
        rows = pred.shape[1]
        nc = self.num_classes if self.num_classes is not None else rows - 4 - 3 * self.num_keypoints
        if rows != 4 + nc + 3 * self.num_keypoints:
            raise ValueError(f"output has {rows} rows, expected 4 + {nc} classes + 3 x {self.num_keypoints}")
        p = pred.transpose(0, 2, 1)  # (B, N, rows): anchors first, as the filter expects
        kp = p[..., 4 + nc :] if self.num_keypoints else None
        return p[..., :4], p[..., 4 : 4 + nc], kp

    def __call__(self, outputs: Mapping[str, NDArray]) -> list[Detections]:
        boxes, cls, kps = self._split(self.output(outputs, "predictions", 3))
        dets = []
        for b in range(boxes.shape[0]):
            scores = cls[b].astype(np.float64)
            if not self.activated:
                scores = sigmoid(scores)
            idx, best, class_ids = self.filter.candidates(scores)
            xyxy = xywh_to_xyxy(boxes[b, idx].astype(np.float64))
            kp = None
            if kps is not None:
                kp = kps[b, idx].astype(np.float64).reshape(idx.size, self.num_keypoints, 3)
            dets.append(self.filter.select(xyxy, best, class_ids, kp))
        return dets


class Yolov8PoseDecoder(Yolov8Decoder):
    params: ClassVar[Mapping[str, Any]] = {
        **Yolov8Decoder.params,
        "num_keypoints": None,
        "keypoint_scores_activated": True,
    }
    with_keypoints = True

    def __init__(self, card: ModelCard) -> None:
        Decoder.__init__(self, card)
        self.filter = DetectionFilter(self)
        self.activated = self.flag("scores_activated")
        k = self.integer("num_keypoints", allow_none=True) or len(card.keypoints)
        if not k:
            raise CardError(
                "keypoints",
                "a yolov8_pose card needs keypoint names (or decoder.params.num_keypoints)",
                self._source,
            )
        self.num_keypoints = k
        self.kp_activated = self.flag("keypoint_scores_activated")
        self.num_classes = len(card.classes) or 1
        shape = self.output_shape("predictions")
        if shape is not None and isinstance(shape[1], int) and shape[1] != 4 + self.num_classes + 3 * k:
            raise CardError(
                "keypoints",
                f"{self.num_classes} classes and {k} keypoints need "
                f"4 + {self.num_classes} + 3 x {k} = {4 + self.num_classes + 3 * k} rows, "
                f"the output has {shape[1]}",
                self._source,
            )

    def __call__(self, outputs: Mapping[str, NDArray]) -> list[Detections]:
        dets = super().__call__(outputs)
        if self.kp_activated:
            return dets
        out = []
        for d in dets:
            kp = d.keypoints.copy()
            kp[..., 2] = sigmoid(kp[..., 2])
            out.append(Detections(d.boxes, d.scores, d.class_ids, kp))
        return out
