"""CenterNet-style heads at stride s (default 4): heatmap ``[B, C, h, w]``, size ``[B, 2, h, w]``
(w, h), optional sub-cell offset ``[B, 2, h, w]`` (dx, dy).

Peaks are cells equal to their 3x3 max-pool (no NMS), the top-K over all classes and cells are kept.
Centre ``(x + dx, y + dy) * s`` as CenterNet trains it (``ct / s`` split into integer cell and offset);
sizes are in output cells (``size_unit: output``, the original) or input pixels (``input``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import cv2
import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.base import Decoder, sigmoid
from perception_pkg.decoders.nms import nms
from perception_pkg.decoders.types import Detections

_KERNEL3 = np.ones((3, 3), dtype=np.uint8)


def max_pool3x3(x: NDArray) -> NDArray:
    """3x3 max filter, stride 1, over the last two axes; outside the map counts as -inf.

    One cv2.dilate over all channels stacked vertically, with a -inf row between channels so windows
    never reach into the neighbouring channel (20x faster than shifted numpy maxima at 80x96x96).
    """
    *lead, h, w = x.shape
    x = np.asarray(x, dtype=np.float32 if x.dtype != np.float64 else np.float64)
    n = int(np.prod(lead)) if lead else 1
    padded = np.empty((n, h + 1, w), dtype=x.dtype)
    padded[:, h] = -np.inf
    padded[:, :h] = x.reshape(n, h, w)
    pooled = cv2.dilate(
        padded.reshape(n * (h + 1), w), _KERNEL3, borderType=cv2.BORDER_CONSTANT, borderValue=-np.inf
    )
    return pooled.reshape(n, h + 1, w)[:, :h].reshape(x.shape)


def heatmap_peaks(heat: NDArray, top_k: int, threshold: float) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Top-K local maxima of one ``(C, h, w)`` heatmap at or above ``threshold``: (class, y, x, value).

    Best first. Ties between equal neighbours (plateaus) all count as peaks, as in CenterNet.
    The threshold is applied first and the window maximum compared only there (most cells are below it).
    """
    _, h, w = heat.shape
    flat = heat.reshape(-1)
    idx = np.flatnonzero(flat >= threshold)
    if idx.size:
        idx = idx[flat[idx] == max_pool3x3(heat).reshape(-1)[idx]]
    if idx.size > top_k:
        idx = idx[np.argpartition(-flat[idx], top_k - 1)[:top_k]]
    idx = idx[np.argsort(-flat[idx], kind="stable")]
    cls, rest = np.divmod(idx, h * w)
    y, x = np.divmod(rest, w)
    return cls, y, x, flat[idx]


def logit(p: float) -> float:
    """Inverse sigmoid of a threshold, +-inf at 1 and 0 (thresholds are compared on logits)."""
    if p <= 0:
        return -np.inf
    if p >= 1:
        return np.inf
    return float(np.log(p / (1 - p)))


class CenterNetDecoder(Decoder):
    roles = ("heatmap", "size")
    optional_roles = ("offset",)
    params: ClassVar[Mapping[str, Any]] = {
        "stride": 4,
        "top_k": 100,
        "score_threshold": 0.1,
        "heatmap_activation": "sigmoid",
        "size_unit": "output",
        "nms_iou": None,
    }
    result = "detections"

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        self.stride = self.number("stride", positive=True)
        self.top_k = self.integer("top_k")
        self.threshold = self.number("score_threshold", lo=0.0, hi=1.0)
        self.activation = self.choice("heatmap_activation", ["sigmoid", "none"])
        self.size_unit = self.choice("size_unit", ["output", "input"])
        self.nms_iou = None if self.p["nms_iou"] is None else self.number("nms_iou", lo=0.0, hi=1.0)
        spec = card.image_input
        shape = self.output_shape("heatmap")
        if shape is not None and all(isinstance(d, int) for d in shape[-2:]):
            if (shape[-2] * self.stride, shape[-1] * self.stride) != (spec.height, spec.width):
                raise self.fail(
                    "stride",
                    f"heatmap {shape[-2]}x{shape[-1]} at stride {self.stride:g} does not "
                    f"cover the {spec.height}x{spec.width} input",
                )

    def __call__(self, outputs: Mapping[str, NDArray]) -> list[Detections]:
        heat = self.output(outputs, "heatmap", 4)
        size = self.output(outputs, "size", 4)
        offset = self.output(outputs, "offset", 4) if "offset" in self.tensors else None
        return [
            self._one(heat[b], size[b], None if offset is None else offset[b]) for b in range(heat.shape[0])
        ]

    def _one(self, heat: NDArray, size: NDArray, offset: NDArray | None) -> Detections:
        cls, _, _, score, boxes = self.peaks(heat, size, offset)
        return Detections(boxes, score, cls.astype(np.int64))

    def peaks(
        self, heat: NDArray, size: NDArray, offset: NDArray | None
    ) -> tuple[NDArray, NDArray, NDArray, NDArray, NDArray]:
        """One image's detections as (class, cell row, cell col, score, boxes xyxy in input pixels)."""
        # sigmoid is monotonic: find peaks on the logits and activate only the K survivors
        if self.activation == "sigmoid":
            cls, y, x, raw = heatmap_peaks(heat, self.top_k, logit(self.threshold) - 1e-6)
            score = sigmoid(raw.astype(np.float64))
            keep = score >= self.threshold  # the logit threshold may round the other way
            cls, y, x, score = cls[keep], y[keep], x[keep], score[keep]
        else:
            cls, y, x, score = heatmap_peaks(heat, self.top_k, self.threshold)
            score = score.astype(np.float64)
        wh = size[:, y, x].T.astype(np.float64)
        if self.size_unit == "output":
            wh = wh * self.stride
        off = offset[:, y, x].T.astype(np.float64) if offset is not None else 0.0
        centre = (np.stack([x, y], axis=1) + off) * self.stride
        boxes = np.concatenate([centre - wh / 2, centre + wh / 2], axis=1)
        if self.nms_iou is not None:
            keep = nms(boxes, score, self.nms_iou, cls)
            boxes, score, cls, y, x = boxes[keep], score[keep], cls[keep], y[keep], x[keep]
        return cls, y, x, score, boxes
