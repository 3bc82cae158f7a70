"""Integral soft-argmax (integral_human_pose_regression.txt, Eqs. 4-6) for integral-trained logits.

``H~_k = softmax over all H*W locations of H_k``; ``J_k = sum_p p * H~_k(p)`` in heatmap coordinates
(:mod:`.geometry`: cell centres at integers). Parameter-free and exactly invariant to adding a constant
to a channel's logits; a flat channel returns the map centre ``((W-1)/2, (H-1)/2)``.

Only valid for logits trained through this operator (the card declares ``decoder: integral``). An ordinary
heatmap (Gaussians of amplitude ~1 regressed with MSE) used as logits gives a nearly flat softmax: every
cell carries weight ``e^0 .. e^1``, so the expectation is pulled to the map centre (a keypoint 7.5 px from
the centre of a 32x32 map lands ~7.3 px off, i.e. at the centre). That failure is silent, so it is checked:

**Rule (documented, tested):** a channel is flagged *non-integral* when its logit dynamic range
``max - min`` is below ``min_logit_range`` nats (default 4). Below that, the peak cell outweighs the floor
by less than ``e^4 ~ 55``; on a 64x48 map the floor's ~3000 cells then hold most of the mass and the
estimate is a blend with the map centre. Integral-trained logits span tens of nats (a log-Gaussian of
sigma 2 px spans ``d_max^2 / 8`` ~ 60 nats on 32x32), while bounded heatmaps (MSE targets in [0, 1],
sigmoid probabilities) span at most ~1. ``on_invalid="raise"`` (default) refuses the batch,
``"flag"`` decodes anyway and reports the flags.

Card decoder (``decoder.type: integral``, role ``logits``, ``[N, K, H, W]``): only for models trained with
the integral loss, so a card must name it explicitly; it is never picked for a plain heatmap.
``on_invalid: raise`` (default) refuses outputs that look like amplitude-bounded heatmaps (the rule
above); ``flag`` decodes them but sets those keypoints' scores to 0 and logs a warning, so a downstream
score threshold drops them. Score = softmax mass within one cell of the mode; ``sigmas`` = the softmax
spread, in crop pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.pose.geometry import DEFAULT_ALIGNMENT
from perception_pkg.decoders.pose.topdown import TopDownMapDecoder
from perception_pkg.decoders.types import Keypoints

log = logging.getLogger(__name__)

DEFAULT_MIN_LOGIT_RANGE = 4.0


class NonIntegralHeatmapError(ValueError):
    """Heatmaps given to the integral decoder do not look like integral-trained logits."""


class IntegralResult(NamedTuple):
    keypoints: NDArray[np.float64]  # (N, K, 2) expectation of the softmax, heatmap coordinates
    scores: NDArray[np.float64]  # (N, K) softmax mass in the 3x3 cells around the mode, in [0, 1]
    spread: NDArray[np.float64]  # (N, K) sqrt(var_x + var_y) of the softmax, heatmap cells
    non_integral: NDArray[np.bool_]  # (N, K) True where the channel fails the logit-range rule


def non_integral_mask(
    logits: ArrayLike, min_logit_range: float = DEFAULT_MIN_LOGIT_RANGE
) -> NDArray[np.bool_]:
    """``(N, K)`` True where a channel's logit range ``max - min`` is below ``min_logit_range`` nats."""
    z = np.asarray(logits)
    rng = z.max(axis=(-2, -1)).astype(np.float64) - z.min(axis=(-2, -1)).astype(np.float64)
    return ~(rng >= min_logit_range)  # NaN logits count as invalid too


def soft_argmax(
    logits: ArrayLike,
    on_invalid: str = "raise",
    min_logit_range: float = DEFAULT_MIN_LOGIT_RANGE,
) -> IntegralResult:
    """Integral decoding of ``(N, K, H, W)`` logits -> :class:`IntegralResult` (vectorised over N and K).

    ``on_invalid``: ``"raise"`` -> :class:`NonIntegralHeatmapError` if any channel fails the rule;
    ``"flag"`` -> decode all channels and return the mask; ``"ignore"`` -> no check (mask all False), for
    callers that validated the model elsewhere. The score is a confidence that, unlike the logit level,
    survives the constant-shift invariance the integral loss leaves: the share of the mass within one
    cell of the mode.
    """
    if on_invalid not in ("raise", "flag", "ignore"):
        raise ValueError(f"on_invalid must be 'raise', 'flag' or 'ignore', got {on_invalid!r}")
    z = np.asarray(logits)
    if z.ndim != 4:
        raise ValueError(f"logits must be (N, K, H, W), got shape {z.shape}")
    n, k, h, w = z.shape
    if on_invalid == "ignore":
        bad = np.zeros((n, k), dtype=bool)
    else:
        bad = non_integral_mask(z, min_logit_range)
        if on_invalid == "raise" and bad.any():
            raise NonIntegralHeatmapError(
                f"{int(bad.sum())} of {bad.size} channels have a logit range below {min_logit_range} nats: "
                "these look like amplitude-bounded heatmaps, not integral-trained logits; soft-argmax would "
                "pull them toward the map centre. Use the argmax decoder, or declare the model integral."
            )
    # The moments come from the two marginals of the unnormalised exponentials (the grid is separable:
    # x depends on the column only), divided by the total at the end: three reductions over the maps
    # instead of a normalisation and four weighted sums over every cell.
    e = z.astype(np.float64)  # always a copy: worked on in place
    e -= e.max(axis=(-2, -1), keepdims=True)
    np.exp(e, out=e)
    # marginals as products with ones: numpy's matmul loop is 5x faster here than its axis reductions
    ex = np.ones(h) @ e  # (N, K, W)
    ey = e @ np.ones(w)  # (N, K, H)
    total = ex.sum(axis=-1)
    xs = np.arange(w, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64)
    mx = (ex @ xs) / total
    my = (ey @ ys) / total
    var = (ex @ (xs * xs)) / total - mx * mx + (ey @ (ys * ys)) / total - my * my
    spread = np.sqrt(np.maximum(var, 0.0))  # cancellation can leave tiny negatives for a point mass
    scores = _mass_around_mode(e) / total
    return IntegralResult(np.stack([mx, my], axis=-1), np.clip(scores, 0.0, 1.0), spread, bad)


def _mass_around_mode(p: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(N, K)`` sum of ``p`` over the 3x3 cells around each map's mode (cells off the map count 0).

    Only the nine cells at the mode are read, in one gather (a box filter over the whole map, or nine
    masked gathers, cost most of the decode).
    """
    n, k, h, w = p.shape
    flat = p.reshape(n * k, h * w)
    row, col = np.divmod(flat.argmax(axis=-1), w)
    r = row[:, None] + _DY
    c = col[:, None] + _DX
    inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    cells = np.minimum(np.maximum(r, 0), h - 1) * w + np.minimum(np.maximum(c, 0), w - 1)
    vals = np.take_along_axis(flat, cells, axis=1)
    return np.where(inside, vals, 0.0).sum(axis=1).reshape(n, k)


_DY = np.repeat(np.arange(-1, 2), 3)[None, :]  # the 3x3 window in row-major order
_DX = np.tile(np.arange(-1, 2), 3)[None, :]


class IntegralDecoder(TopDownMapDecoder):
    """Soft-argmax of integral-trained logits (``decoder.type: integral``); refuses plain heatmaps."""

    roles = ("logits",)
    shape_role = "logits"
    params: ClassVar[Mapping[str, Any]] = {
        "stride": None,
        "alignment": DEFAULT_ALIGNMENT,
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
