"""Card-selectable top-down pose decoders: integral soft-argmax and mass displacement voting.

Both are thin card wrappers around the numpy decoders (:mod:`pose_integral`, :mod:`pose_mass_displacement`)
and the one heatmap-to-crop mapping of :mod:`pose_geometry`; like ``heatmap_argmax`` they return
:class:`Keypoints` in network-input (crop) pixels, which ``ModelRunner`` maps back to the image with the
exact inverse of the crop's affine map.

- ``integral`` (role ``logits``, ``[N, K, H, W]``): only for models trained with the integral loss, so a
  card must name it explicitly; it is never picked for a plain heatmap. ``on_invalid: raise`` (default)
  refuses outputs that look like amplitude-bounded heatmaps (logit range < ``min_logit_range`` nats, see
  ``pose_integral``); ``flag`` decodes them but sets those keypoints' scores to 0 and logs a warning, so a
  downstream score threshold drops them. Score = softmax mass within one cell of the mode; ``sigmas`` =
  the softmax spread, in crop pixels.
- ``mass_displacement`` (roles ``c``, ``o_x``, ``o_y``, each ``[N, K, H, W]``): ``x' = x + d * o(x)`` with
  ``o = (target - x) / d`` (``offset_sign: -1`` for models trained with the paper's literal, opposite
  sign), voting ``additive`` or ``noisy_or``, kernel ``bilinear`` or ``gaussian`` (``sigma`` cells).
  ``d`` is in heatmap cells. Score = the vote map at the peak.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.errors import CardError
from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.base import Decoder, sigmoid
from perception_pkg.decoders.pose_geometry import ALIGNMENTS, heatmap_to_crop
from perception_pkg.decoders.pose_integral import DEFAULT_MIN_LOGIT_RANGE, soft_argmax
from perception_pkg.decoders.pose_mass_displacement import KERNELS, RULES, mass_displacement_decode
from perception_pkg.decoders.types import Keypoints

log = logging.getLogger(__name__)


class _TopDownMapDecoder(Decoder):
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


class IntegralDecoder(_TopDownMapDecoder):
    """Soft-argmax of integral-trained logits (``decoder.type: integral``); refuses plain heatmaps."""

    roles = ("logits",)
    shape_role = "logits"
    params: ClassVar[Mapping[str, Any]] = {
        "stride": None,
        "alignment": "cell",
        "on_invalid": "raise",
        "min_logit_range": DEFAULT_MIN_LOGIT_RANGE,
    }

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        # "ignore" is not offered: skipping the check is what makes this failure silent
        self.on_invalid = self.choice("on_invalid", ["raise", "flag"])
        self.min_logit_range = self.number("min_logit_range", positive=True)

    def __call__(self, outputs: Mapping[str, NDArray]) -> Keypoints:
        logits = self.output(outputs, "logits", 4)
        res = soft_argmax(logits, self.on_invalid, self.min_logit_range)
        scores = res.scores
        if res.non_integral.any():
            log.warning(
                "%s: %d of %d keypoint maps are not integral-trained logits; their scores are set to 0",
                self.card.name,
                int(res.non_integral.sum()),
                res.non_integral.size,
            )
            scores = np.where(res.non_integral, 0.0, scores)
        # isotropic spread in cells -> crop pixels; Keypoints.transformed scales it to the image
        return Keypoints(self.to_crop(res.keypoints), scores, res.spread * self.stride)


class MassDisplacementDecoder(_TopDownMapDecoder):
    """Vote ``c`` along the displacement field ``(o_x, o_y)``, then argmax (``type: mass_displacement``)."""

    roles = ("c", "o_x", "o_y")
    shape_role = "c"
    params: ClassVar[Mapping[str, Any]] = {
        "stride": None,
        "alignment": "cell",
        "d": 1.0,
        "voting": "noisy_or",
        "kernel": "bilinear",
        "sigma": 1.0,
        "activation": "none",
        "offset_sign": 1,
        "refine": "none",
    }

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        self.d = self.number("d", positive=True)
        self.voting = self.choice("voting", list(RULES))
        self.kernel = self.choice("kernel", list(KERNELS))
        self.sigma = self.number("sigma", positive=True)
        self.activation = self.choice("activation", ["none", "sigmoid"])
        sign = self.p["offset_sign"]
        if sign not in (1, -1) or isinstance(sign, bool):
            raise self.fail("offset_sign", f"expected 1 or -1, got {sign!r}")
        self.offset_sign = float(sign)
        self.refine = self.choice("refine", ["none", "quarter"])

    def __call__(self, outputs: Mapping[str, NDArray]) -> Keypoints:
        c = self.output(outputs, "c", 4)
        o_x = self.output(outputs, "o_x", 4)
        o_y = self.output(outputs, "o_y", 4)
        if self.activation == "sigmoid":
            c = sigmoid(c.astype(np.float64))
        # the sign flips the field, not d: a negated d would be refused as a distance
        cells, score, _ = mass_displacement_decode(
            c,
            self.offset_sign * o_x,
            self.offset_sign * o_y,
            self.d,
            self.voting,
            self.kernel,
            self.sigma,
            self.refine,
        )
        return Keypoints(self.to_crop(cells), score)
