"""YOLOX raw head output ``[B, N, 5 + C]``: grid decode outside the graph.

Row layout: ``dx, dy, log w, log h, objectness, class scores``; anchors are ordered stride by stride
(8, 16, 32), row-major within a level, as YOLOX's own export with ``decode_in_inference=False`` does.
Box: ``cx = (dx + gx) * s``, ``w = exp(log w) * s``. Score = objectness x class score. YOLOX applies the
sigmoid to objectness and classes inside the graph; set ``scores_activated: false`` if yours does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.errors import CardError
from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.base import DETECTION_PARAMS, Decoder, DetectionFilter, sigmoid
from perception_pkg.decoders.types import Detections


def yolox_grid(input_hw: tuple[int, int], strides: tuple[int, ...]) -> tuple[NDArray, NDArray]:
    """Grid cell (gx, gy) and stride of every anchor, in output order."""
    cells, scale = [], []
    for s in strides:
        h, w = input_hw[0] // s, input_hw[1] // s
        yv, xv = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        cells.append(np.stack([xv.ravel(), yv.ravel()], axis=1))
        scale.append(np.full(h * w, s))
    return np.concatenate(cells).astype(np.float64), np.concatenate(scale).astype(np.float64)


class YoloxDecoder(Decoder):
    roles = ("predictions",)
    params: ClassVar[Mapping[str, Any]] = {
        **DETECTION_PARAMS,
        "strides": [8, 16, 32],
        "scores_activated": True,
    }
    result = "detections"

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        strides = self.p["strides"]
        if (
            not isinstance(strides, list)
            or not strides
            or not all(isinstance(s, int) and s > 0 for s in strides)
        ):
            raise self.fail("strides", f"expected a list of positive integers, got {strides!r}")
        self.strides = tuple(strides)
        spec = card.image_input
        self.grid, self.stride = yolox_grid((spec.height, spec.width), self.strides)
        self.filter = DetectionFilter(self)
        self.activated = self.flag("scores_activated")
        shape = self.output_shape("predictions")
        if shape is not None and isinstance(shape[1], int) and shape[1] != len(self.stride):
            raise self.fail(
                "strides",
                f"strides {list(self.strides)} on a {spec.height}x{spec.width} input give "
                f"{len(self.stride)} anchors, but the output has {shape[1]}",
            )
        if (
            shape is not None
            and isinstance(shape[-1], int)
            and card.classes
            and shape[-1] != 5 + len(card.classes)
        ):
            raise CardError(
                "classes",
                f"{len(card.classes)} classes need rows of 5 + {len(card.classes)} values, "
                f"the output has {shape[-1]}",
                self._source,
            )

    def __call__(self, outputs: Mapping[str, NDArray]) -> list[Detections]:
        pred = self.output(outputs, "predictions", 3)
        if pred.shape[1] != self.grid.shape[0]:
            raise ValueError(f"YOLOX output has {pred.shape[1]} anchors, grid has {self.grid.shape[0]}")
        return [self._one(p) for p in pred]

    def _one(self, p: NDArray) -> Detections:
        obj = p[:, 4:5].astype(np.float64)
        cls = p[:, 5:].astype(np.float64)
        if not self.activated:
            obj, cls = sigmoid(obj), sigmoid(cls)
        idx, scores, class_ids = self.filter.candidates(obj * cls)
        raw = p[idx, :4].astype(np.float64)
        s = self.stride[idx, None]
        centre = (raw[:, :2] + self.grid[idx]) * s
        half = np.exp(raw[:, 2:4]) * s / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        return self.filter.select(boxes, scores, class_ids)
