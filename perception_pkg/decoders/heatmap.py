"""Top-down heatmap pose ``[B, K, H/s, W/s]`` (SimpleBaseline / HRNet): argmax per channel.

The card-driven wrapper around :func:`pose_argmax.argmax_decode` and the heatmap-to-input mapping of
:mod:`pose_geometry` (the one place it is defined; ``alignment`` ``cell`` or ``legacy``).
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
from perception_pkg.decoders.pose_argmax import argmax_decode
from perception_pkg.decoders.pose_geometry import heatmap_to_crop
from perception_pkg.decoders.types import Keypoints


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
        cells, peak = argmax_decode(hm, self.refine)
        scores = sigmoid(peak.astype(np.float64)) if self.activation == "sigmoid" else peak.astype(np.float64)
        return Keypoints(heatmap_to_crop(cells, self.stride, self.alignment), scores)
