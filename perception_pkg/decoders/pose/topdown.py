"""Shared base of the card-selected top-down map decoders (``integral``, ``mass_displacement``).

Both are thin card wrappers around numpy decoders (:mod:`.integral`, :mod:`.mass_displacement`) and the
one heatmap-to-crop mapping of :mod:`.geometry`; like ``heatmap_argmax`` they return :class:`Keypoints`
in network-input (crop) pixels, which ``ModelRunner`` maps back to the image with the exact inverse of
the crop's affine map. :class:`TopDownMapDecoder` holds what they share: the stride (given, or derived
from the card's output shape), the grid alignment, and the channel-count check.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.errors import CardError
from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.base import Decoder
from perception_pkg.decoders.pose.geometry import ALIGNMENTS, heatmap_to_crop


class TopDownMapDecoder(Decoder):
    """Shared by the map-based pose decoders: stride (given or derived from the card's output shape),
    grid alignment, and a check that the channel count matches the card's keypoint names."""

    result = "keypoints"
    shape_role: ClassVar[str] = ""

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        self.alignment = self.choice("alignment", list(ALIGNMENTS))
        spec = card.image_input
        shape = self.output_shape(self.shape_role)
        if self.p["stride"] is not None:
            self.stride = self.number("stride", positive=True)
        else:
            if shape is None or len(shape) != 4 or not all(isinstance(d, int) for d in shape[-2:]):
                raise self.fail(
                    "stride", "give the heatmap stride, or the map output's shape so it can be derived"
                )
            self.stride = spec.width / shape[-1]
            if abs(spec.height / shape[-2] - self.stride) > 1e-9:
                raise self.fail(
                    "stride",
                    f"input {spec.height}x{spec.width} and maps {shape[-2]}x{shape[-1]} have different "
                    "strides per axis; give it explicitly",
                )
        if card.keypoints and shape is not None and len(shape) == 4 and isinstance(shape[1], int):
            if shape[1] != len(card.keypoints):
                raise CardError(
                    "keypoints",
                    f"{len(card.keypoints)} keypoint names but the {self.shape_role!r} output has "
                    f"{shape[1]} channels",
                    self._source,
                )

    def to_crop(self, cells: NDArray[np.float64]) -> NDArray[np.float64]:
        return heatmap_to_crop(cells, self.stride, self.alignment)
