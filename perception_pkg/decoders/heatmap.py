"""Top-down heatmap pose ``[B, K, H/s, W/s]`` (SimpleBaseline / HRNet): argmax per channel.

Heatmap-to-input mapping (the one place it is defined; ``alignment``):
- ``cell`` (default): heatmap cell ``u`` covers input pixels ``[u s, (u + 1) s)``, so ``x = (u + 0.5) s``.
- ``legacy``: cell ``u`` sits on input pixel centre ``u s`` (MSRA SimpleBaseline/HRNet targets built with
  ``int(x / s + 0.5)``), so ``x = u s + 0.5`` in our frame.
``refine: quarter`` moves the peak a quarter cell toward the higher neighbour on each axis (RSN /
SimpleBaseline practice). Score = peak value, after a sigmoid when ``activation: sigmoid``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.errors import CardError
from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.base import Decoder, sigmoid
from perception_pkg.decoders.types import Keypoints


def heatmap_to_input(u: NDArray, stride: float, alignment: str = "cell") -> NDArray:
    """Heatmap coordinates (cells, sub-cell allowed) -> input-pixel coordinates."""
    if alignment == "cell":
        return (u + 0.5) * stride
    if alignment == "legacy":
        return u * stride + 0.5
    raise ValueError(f"unknown heatmap alignment {alignment!r}")


def argmax_2d(heatmaps: NDArray, refine: str = "quarter") -> tuple[NDArray, NDArray]:
    """Peak per channel of ``(..., H, W)``: (cell x, y as float (..., 2), peak value (...))."""
    h, w = heatmaps.shape[-2:]
    flat = heatmaps.reshape(*heatmaps.shape[:-2], h * w)
    idx = flat.argmax(axis=-1)
    peak = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
    y, x = np.divmod(idx, w)
    xy = np.stack([x, y], axis=-1).astype(np.float64)
    if refine == "quarter":

        def at(dy: NDArray | int, dx: NDArray | int) -> NDArray:
            yy = np.clip(y + dy, 0, h - 1)
            xx = np.clip(x + dx, 0, w - 1)
            return np.take_along_axis(flat, (yy * w + xx)[..., None], axis=-1)[..., 0]

        # only interior peaks have both neighbours; at the border the shift would be one-sided
        gx = np.where((x > 0) & (x < w - 1), np.sign(at(0, 1) - at(0, -1)), 0.0)
        gy = np.where((y > 0) & (y < h - 1), np.sign(at(1, 0) - at(-1, 0)), 0.0)
        xy += 0.25 * np.stack([gx, gy], axis=-1)
    elif refine != "none":
        raise ValueError(f"unknown refine {refine!r}")
    return xy, peak


class HeatmapArgmaxDecoder(Decoder):
    roles = ("heatmaps",)
    params: ClassVar[Mapping[str, Any]] = {
        "stride": None,
        "activation": "none",
        "refine": "quarter",
        "alignment": "cell",
    }
    result = "keypoints"

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        self.activation = self.choice("activation", ["none", "sigmoid"])
        self.refine = self.choice("refine", ["quarter", "none"])
        self.alignment = self.choice("alignment", ["cell", "legacy"])
        spec = card.image_input
        shape = self.output_shape("heatmaps")
        stride = self.p["stride"]
        if stride is None:
            if shape is None or not isinstance(shape[-1], int):
                raise self.fail(
                    "stride", "give the heatmap stride, or the heatmap output shape so it can be derived"
                )
            stride = spec.width / shape[-1]
            if abs(spec.height / shape[-2] - stride) > 1e-9:
                raise self.fail(
                    "stride",
                    f"input {spec.height}x{spec.width} and heatmap {shape[-2]}x{shape[-1]} "
                    "have different strides per axis; give it explicitly",
                )
        self.stride = self.number("stride", positive=True) if self.p["stride"] is not None else float(stride)
        if (
            card.keypoints
            and shape is not None
            and isinstance(shape[1], int)
            and shape[1] != len(card.keypoints)
        ):
            raise CardError(
                "keypoints",
                f"{len(card.keypoints)} keypoint names but the heatmap output has {shape[1]} channels",
                self._source,
            )

    def __call__(self, outputs: Mapping[str, NDArray]) -> Keypoints:
        hm = self.output(outputs, "heatmaps", 4)
        cells, peak = argmax_2d(hm, self.refine)
        scores = sigmoid(peak.astype(np.float64)) if self.activation == "sigmoid" else peak.astype(np.float64)
        return Keypoints(heatmap_to_input(cells, self.stride, self.alignment), scores)
