"""Mass displacement voting (mass_displacement_networks.txt, Eqs. 1-2) for top-down keypoint heads.

Heads per keypoint: confidence ``c`` (N, K, H, W) in [0, 1] and displacement fields ``o_x``, ``o_y``
(N, K, H, W). Every cell ``x`` (heatmap coordinates, :mod:`.geometry`) sends its confidence to

    x' = x + d * o(x),        sign convention: o = (target - x) / d,

so a perfect field carries all mass onto the keypoint. ``d`` is the paper's normalisation distance
(``d = eps_c`` for within-part voting, the map size for cross-part voting), in heatmap cells. NB: the
paper's target formula (its Eq. 3) is written ``(x_i - x_0) / d``, the opposite sign to its own
``x' = x + o``; a model trained with that literal target must have its offsets negated by whoever loads it
(the card). Here the sign is fixed and tested: positive offsets move mass toward +x / +y.

Voting, with kernel ``K`` centred on ``x'``:
- additive: ``m(x0) = sum_x K(x0 - x') c(x)``
- noisy-OR: ``m(x0) = 1 - prod_x (1 - K(x0 - x') c(x)) = 1 - exp(sum_x log1p(-K c))`` (log domain so a
  product of thousands of factors near 1 neither underflows nor loses precision)
Kernels: ``"bilinear"`` (2x2 splat, the paper's recommendation: it preserves mass and first moment exactly)
or ``"gaussian"`` (``K(0) = 1``, truncated at ``ceil(3 sigma)``). Keypoint = argmax of ``m``;
score = ``m`` at the peak. Everything is scattered with one ``np.bincount`` per call (no per-pixel
Python loop; the only loop runs over the kernel's taps, 4 for bilinear).

Card decoder (``decoder.type: mass_displacement``, roles ``c``, ``o_x``, ``o_y``, each ``[N, K, H, W]``):
``o = (target - x) / d`` as above (``offset_sign: -1`` for models trained with the paper's literal,
opposite sign), voting ``additive`` or ``noisy_or``, kernel ``bilinear`` or ``gaussian`` (``sigma``
cells); ``d`` is in heatmap cells. Score = the vote map at the peak.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.base import sigmoid
from perception_pkg.decoders.pose.geometry import DEFAULT_ALIGNMENT, grid_xy
from perception_pkg.decoders.pose.heatmap_argmax import argmax_decode
from perception_pkg.decoders.pose.topdown import TopDownMapDecoder
from perception_pkg.decoders.types import Keypoints

RULES = ("additive", "noisy_or")
KERNELS = ("bilinear", "gaussian")


def _as_fields(c: ArrayLike, o_x: ArrayLike, o_y: ArrayLike) -> tuple[NDArray, NDArray, NDArray]:
    c = np.asarray(c, dtype=np.float64)
    o_x = np.asarray(o_x, dtype=np.float64)
    o_y = np.asarray(o_y, dtype=np.float64)
    if c.ndim != 4 or o_x.shape != c.shape or o_y.shape != c.shape:
        raise ValueError(f"c, o_x, o_y must all be (N, K, H, W); got {c.shape}, {o_x.shape}, {o_y.shape}")
    return c, o_x, o_y


def displaced_positions(o_x: ArrayLike, o_y: ArrayLike, d: float = 1.0) -> tuple[NDArray, NDArray]:
    """``x' = x + d o_x``, ``y' = y + d o_y`` for every cell of ``(..., H, W)`` fields (heatmap coords)."""
    if not (np.isfinite(d) and d > 0):
        raise ValueError(f"normalisation distance d must be positive, got {d!r}")
    o_x = np.asarray(o_x, dtype=np.float64)
    o_y = np.asarray(o_y, dtype=np.float64)
    gx, gy = grid_xy(*o_x.shape[-2:])
    return gx + d * o_x, gy + d * o_y


def _taps(xp: NDArray, yp: NDArray, kernel: str, sigma: float) -> list[tuple[NDArray, NDArray, NDArray]]:
    """(target x index, target y index, weight) per kernel tap, each shaped like ``xp``."""
    if kernel == "bilinear":
        x0, y0 = np.floor(xp), np.floor(yp)
        fx, fy = xp - x0, yp - y0
        return [
            (x0, y0, (1 - fx) * (1 - fy)),
            (x0 + 1, y0, fx * (1 - fy)),
            (x0, y0 + 1, (1 - fx) * fy),
            (x0 + 1, y0 + 1, fx * fy),
        ]
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"Gaussian kernel sigma must be positive, got {sigma!r}")
    r = int(np.ceil(3 * sigma))
    cx, cy = np.rint(xp), np.rint(yp)
    out = []
    for dy in range(-r, r + 1):  # loop over kernel taps; each tap is vectorised over all cells
        for dx in range(-r, r + 1):
            tx, ty = cx + dx, cy + dy
            out.append((tx, ty, np.exp(-((tx - xp) ** 2 + (ty - yp) ** 2) / (2 * sigma * sigma))))
    return out


def vote(
    c: ArrayLike,
    o_x: ArrayLike,
    o_y: ArrayLike,
    d: float = 1.0,
    rule: str = "additive",
    kernel: str = "bilinear",
    sigma: float = 1.0,
) -> NDArray[np.float64]:
    """Mass-displacement map ``m`` (N, K, H, W) float64 from ``c``, ``o_x``, ``o_y`` (N, K, H, W).

    Votes landing outside the map are dropped (so mass is only conserved away from the borders).
    Non-finite displacements are treated as no vote. For noisy-OR, ``c`` is clipped to [0, 1] first:
    ``log1p(-K c)`` is undefined above 1, and the rule is only meaningful for probabilities.
    """
    if rule not in RULES:
        raise ValueError(f"unknown voting rule {rule!r}; expected one of {RULES}")
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {KERNELS}")
    c, o_x, o_y = _as_fields(c, o_x, o_y)
    n, k, h, w = c.shape
    if rule == "noisy_or":
        c = np.clip(c, 0.0, 1.0)
    xp, yp = displaced_positions(o_x, o_y, d)
    finite = np.isfinite(xp) & np.isfinite(yp)
    xp, yp = np.where(finite, xp, -2.0 * (w + h)), np.where(finite, yp, -2.0 * (w + h))  # -> off the map
    base = (np.arange(n * k) * (h * w)).reshape(n, k, 1, 1)  # flat offset of each (person, keypoint) map
    idx_parts, val_parts = [], []
    for tx, ty, wt in _taps(xp, yp, kernel, sigma):
        inside = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h) & (wt > 0)
        flat = base + ty.astype(np.int64) * w + tx.astype(np.int64)
        idx_parts.append(flat[inside])
        kc = (wt * c)[inside]
        if rule == "additive":
            val_parts.append(kc)
        else:
            with np.errstate(divide="ignore"):  # K c = 1 is a certain vote: log1p(-1) = -inf, m = 1
                val_parts.append(np.log1p(-np.minimum(kc, 1.0)))
    idx = np.concatenate(idx_parts)
    acc = np.bincount(idx, weights=np.concatenate(val_parts), minlength=n * k * h * w)
    acc = acc.reshape(n, k, h, w)
    if rule == "additive":
        return acc
    return -np.expm1(acc)  # 1 - exp(sum log1p(-K c)), accurate when the sum is tiny


def mass_displacement_decode(
    c: ArrayLike,
    o_x: ArrayLike,
    o_y: ArrayLike,
    d: float = 1.0,
    rule: str = "noisy_or",
    kernel: str = "bilinear",
    sigma: float = 1.0,
    refine: str = "none",
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Vote, then argmax: (keypoints (N, K, 2) heatmap coords, scores (N, K) = peak of m, m (N, K, H, W)).

    ``refine`` is passed to the argmax ("none" by default: the votes already carry the sub-cell offset
    into the 2x2 splat, and a quarter shift on top double-counts it).
    """
    m = vote(c, o_x, o_y, d, rule, kernel, sigma)
    kp, score = argmax_decode(m, refine)
    return kp, score, m


class MassDisplacementDecoder(TopDownMapDecoder):
    """Vote ``c`` along the displacement field ``(o_x, o_y)``, then argmax (``type: mass_displacement``)."""

    roles = ("c", "o_x", "o_y")
    shape_role = "c"
    params: ClassVar[Mapping[str, Any]] = {
        "stride": None,
        "alignment": DEFAULT_ALIGNMENT,
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
