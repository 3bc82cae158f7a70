"""SimCC outputs (RTMPose, SimCC): per keypoint a 1-D x vector of ``W k`` bins and a y vector of ``H k``
bins over the crop (split ratio ``k``, usually 2.0), card decoder ``decoder.type: simcc``.

Decode (mmpose ``get_simcc_maximum`` + ``SimCCLabel.decode``): bin ``i = argmax``, location ``i / k``
in the crop's pixel-centre frame, score = ``min(max_x, max_y)``. The bin-to-crop mapping is the one
:mod:`.geometry` defines for heatmaps with stride ``1 / k``: ``alignment: legacy`` (default, mmpose:
bin ``i`` at crop pixel centre ``i / k``) or ``cell`` (bin ``i`` covers ``[i / k, (i + 1) / k)``).
Returns :class:`Keypoints` in network-input (crop) pixels; the runner maps them to the image with the
inverse of the crop's map. mmpose marks keypoints whose score is <= 0 with location -1; here they keep
their argmax location and their (non-positive) score, which a score threshold drops.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.errors import CardError
from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.base import Decoder, sigmoid
from perception_pkg.decoders.pose.geometry import ALIGNMENTS, DEFAULT_ALIGNMENT, heatmap_to_crop
from perception_pkg.decoders.types import Keypoints


def simcc_decode(simcc_x: NDArray, simcc_y: NDArray) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(N, K, Wk)``, ``(N, K, Hk)`` -> (bins (N, K, 2) as (x, y), scores (N, K) = min of the maxima)."""
    ix = simcc_x.argmax(axis=-1)
    iy = simcc_y.argmax(axis=-1)
    vx = np.take_along_axis(simcc_x, ix[..., None], axis=-1)[..., 0].astype(np.float64)
    vy = np.take_along_axis(simcc_y, iy[..., None], axis=-1)[..., 0].astype(np.float64)
    return np.stack([ix, iy], axis=-1).astype(np.float64), np.minimum(vx, vy)


class SimccDecoder(Decoder):
    roles = ("simcc_x", "simcc_y")
    params: ClassVar[Mapping[str, Any]] = {
        "split_ratio": 2.0,
        "alignment": DEFAULT_ALIGNMENT,
        "activation": "none",
    }
    result = "keypoints"

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        self.split_ratio = self.number("split_ratio", positive=True)
        self.alignment = self.choice("alignment", list(ALIGNMENTS))
        self.activation = self.choice("activation", ["none", "sigmoid"])
        spec = card.image_input
        for role, size, axis in (("simcc_x", spec.width, "width"), ("simcc_y", spec.height, "height")):
            shape = self.output_shape(role)
            if shape is None:
                continue
            if len(shape) != 3:
                raise CardError(
                    f"outputs[{card.output_names.index(self.tensors[role])}].shape",
                    f"a SimCC {role} output is [N, K, bins], got {list(shape)}",
                    self._source,
                )
            bins = shape[-1]
            if isinstance(bins, int) and abs(bins - size * self.split_ratio) > 1e-6:
                raise self.fail(
                    "split_ratio",
                    f"{role} has {bins} bins but input {axis} {size} x split_ratio {self.split_ratio} "
                    f"= {size * self.split_ratio:g}",
                )
            k = shape[1]
            if card.keypoints and isinstance(k, int) and k != len(card.keypoints):
                raise CardError(
                    "keypoints",
                    f"{len(card.keypoints)} keypoint names but the {role!r} output has {k} keypoints",
                    self._source,
                )

    def __call__(self, outputs: Mapping[str, NDArray]) -> Keypoints:
        x = self.output(outputs, "simcc_x", 3)
        y = self.output(outputs, "simcc_y", 3)
        if x.shape[:2] != y.shape[:2]:
            raise ValueError(f"simcc_x {x.shape} and simcc_y {y.shape} disagree on (N, K)")
        bins, scores = simcc_decode(x, y)
        if self.activation == "sigmoid":
            scores = sigmoid(scores)
        return Keypoints(heatmap_to_crop(bins, 1.0 / self.split_ratio, self.alignment), scores)
