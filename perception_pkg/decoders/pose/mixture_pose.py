"""Mixture-density keypoint offsets for a bottom-up CenterNet-style model
(mixture_density_offset_regression.txt, Eqs. 3-5).

Heads on the output grid (heatmap coordinates, :mod:`.geometry`), for B images, M components, K keypoints:
- ``centre`` (B, H, W) (or (B, 1, H, W)): person-centre probability (after the sigmoid);
- ``offsets`` (B, M, 2K, H, W): per component the offsets ``O_m = [dx_0, dy_0, dx_1, dy_1, ...]`` from the
  centre cell ``p`` to each keypoint, in heatmap cells (the paper's interleaved layout);
- ``sigma`` (B, M, H, W): per component one standard deviation shared by all keypoints of the person
  (already positive: :func:`sigma_from_raw` is the training-time parametrisation);
- ``alpha_logits`` (B, M, H, W): mixture weights before the softmax over M.

Decoding takes the most probable component ``m* = argmax alpha`` and returns ``p + O_m*`` with ``sigma_m*``
as the per-keypoint uncertainty. Not the mixture mean: with separated modes the mean is a pose that no
component supports (halfway between two hypotheses for a wrist). No flip TTA (a flip would have to swap the
components' identities, which are not ordered).

Per-keypoint scale: the paper divides sigma by the COCO per-keypoint factor in the likelihood. Read
literally that would make the nose (0.026) 4x *less* certain than a hip (0.107); the sensible reading,
implemented here when ``keypoint_scales`` is given, is that the residual is normalised by the factor,
i.e. ``sigma_k = sigma_m * scale_k`` (tighter for the nose). Without it sigma is shared, as in Eq. 4.

Card decoder (:class:`MixturePoseDecoder`, ``decoder.type: mixture_pose``). Roles: ``centre``
(B, C, h, w) centre logits or probabilities (channel ``centre_channel`` is the person class),
``offsets`` (B, M * 2K, h, w) per component the centre -> keypoint offsets in output cells, ``sigma``
(B, M, h, w) raw sigma (``sigma_from_raw`` with ``sigma_minimum``, as trained), ``alpha`` (B, M, h, w)
mixture logits; optional ``size`` / ``offset`` give the person box as CenterNet does. Offsets are taken
from the integer centre cell, so keypoint = (cell + O_m*) * stride in input pixels.

Returns :class:`Detections` with ``keypoints`` (N, K, 3) (x, y, score = the centre score: the model has
no per-keypoint confidence) and ``extras["keypoint_sigma"]`` (N, K) in input pixels: the uncertainty the
paper publishes, carried to ``Keypoint2D.sigma``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.base import Decoder, sigmoid
from perception_pkg.decoders.types import Detections

LOG_2PI = float(np.log(2.0 * np.pi))


class MixtureResult(NamedTuple):
    image_index: NDArray[np.intp]  # (P,) which image of the batch each person comes from
    centres: NDArray[np.float64]  # (P, 2) centre cell p (x, y), heatmap coordinates
    centre_scores: NDArray[np.float64]  # (P,) centre heatmap value at p
    keypoints: NDArray[np.float64]  # (P, K, 2) p + O_m*, heatmap coordinates
    sigma: NDArray[np.float64]  # (P, K) per-keypoint standard deviation of component m*, heatmap cells
    component: NDArray[np.intp]  # (P,) m*
    alpha: NDArray[np.float64]  # (P, M) mixture weights (softmax of the logits)


def elu(x: ArrayLike) -> NDArray[np.float64]:
    """ELU: ``x`` for x > 0, ``exp(x) - 1`` otherwise (bounded below by -1)."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))


def sigma_from_raw(raw: ArrayLike, minimum: float = 10.0) -> NDArray[np.float64]:
    """Sigma parametrisation of the paper: ELU shifted so that ``sigma > minimum`` for every raw output.

    ``sigma = minimum + 1 + elu(raw)``: smooth, linear for raw > 0, approaches ``minimum`` as raw -> -inf.
    The paper uses minimum 10 *input* pixels on COCO; divide by the stride for heatmap cells. A floor keeps
    the NLL from collapsing a component onto one sample (mode collapse) early in training.
    """
    return minimum + 1.0 + elu(raw)


def log_softmax(x: ArrayLike, axis: int = -1) -> NDArray[np.float64]:
    x = np.asarray(x, dtype=np.float64)
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def logsumexp(x: ArrayLike, axis: int = -1) -> NDArray[np.float64]:
    """``log sum exp`` along ``axis`` with the max factored out (all -inf -> -inf, not NaN)."""
    x = np.asarray(x, dtype=np.float64)
    mx = x.max(axis=axis, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    return np.squeeze(np.log(np.exp(x - mx).sum(axis=axis, keepdims=True)) + mx, axis=axis)


def _per_keypoint_sigma(sigma: NDArray, k: int, keypoint_scales: ArrayLike | None) -> NDArray:
    """(..., M) -> (..., M, K)."""
    s = np.repeat(sigma[..., None], k, axis=-1)
    if keypoint_scales is not None:
        scales = np.asarray(keypoint_scales, dtype=np.float64)
        if scales.shape != (k,) or np.any(scales <= 0):
            raise ValueError(f"keypoint_scales must be {k} positive numbers, got shape {scales.shape}")
        s = s * scales
    return s


def mixture_nll(
    gt_offsets: ArrayLike,
    offsets: ArrayLike,
    sigma: ArrayLike,
    alpha_logits: ArrayLike,
    visible: ArrayLike | None = None,
    keypoint_scales: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Negative log-likelihood ``-log sum_m alpha_m phi_m(G)`` per sample (Eqs. 3-5), via LogSumExp.

    Shapes: ``gt_offsets`` G (..., 2K); ``offsets`` O (..., M, 2K); ``sigma`` (..., M) > 0;
    ``alpha_logits`` (..., M); ``visible`` (..., K) bool (unannotated keypoints are left out of the
    likelihood, so the dimension is ``c = 2 * visible keypoints``). For M = 1 and no mask this is exactly
    ``c ln sigma + |G - O|^2 / (2 sigma^2) + (c / 2) ln 2 pi``. Each component's log-density is formed in
    the log domain and combined with LogSumExp, so residuals of thousands of sigmas stay finite where
    ``exp`` of the density underflows to 0 (and ``-log 0 = inf``).
    """
    g = np.asarray(gt_offsets, dtype=np.float64)
    o = np.asarray(offsets, dtype=np.float64)
    s = np.asarray(sigma, dtype=np.float64)
    a = np.asarray(alpha_logits, dtype=np.float64)
    if o.shape[-1] % 2 or g.shape[-1] != o.shape[-1] or s.shape != o.shape[:-1] or a.shape != s.shape:
        raise ValueError(
            f"shapes do not fit G (..., 2K), O (..., M, 2K), sigma/alpha (..., M): "
            f"{g.shape}, {o.shape}, {s.shape}, {a.shape}"
        )
    if np.any(s <= 0):
        raise ValueError("sigma must be positive")
    k = o.shape[-1] // 2
    res = (g[..., None, :] - o).reshape(*o.shape[:-1], k, 2)
    sq = (res * res).sum(axis=-1)  # (..., M, K)
    sk = _per_keypoint_sigma(s, k, keypoint_scales)  # (..., M, K)
    vis = np.ones((*sq.shape[:-2], k), bool) if visible is None else np.asarray(visible, bool)
    w = vis[..., None, :].astype(np.float64)
    c = 2.0 * w.sum(axis=-1)  # (..., 1)
    log_phi = -(0.5 * c * LOG_2PI) - (w * (2.0 * np.log(sk) + sq / (2.0 * sk * sk))).sum(axis=-1)
    return -logsumexp(log_softmax(a, axis=-1) + log_phi, axis=-1)


def select_component(
    centres: ArrayLike,
    offsets_at: ArrayLike,
    sigma_at: ArrayLike,
    alpha_logits_at: ArrayLike,
    keypoint_scales: ArrayLike | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.intp], NDArray[np.float64]]:
    """Max-alpha decoding at given centres: ``centres`` (P, 2), ``offsets_at`` (P, M, 2K),
    ``sigma_at`` (P, M), ``alpha_logits_at`` (P, M) -> (keypoints (P, K, 2) = p + O_m*, sigma (P, K),
    m* (P,), alpha (P, M))."""
    p = np.asarray(centres, dtype=np.float64)
    o = np.asarray(offsets_at, dtype=np.float64)
    s = np.asarray(sigma_at, dtype=np.float64)
    a = np.asarray(alpha_logits_at, dtype=np.float64)
    n, _m, two_k = o.shape
    k = two_k // 2
    alpha = np.exp(log_softmax(a, axis=-1))
    best = a.argmax(axis=-1)  # argmax of the logits = argmax of the softmax, without its rounding
    rows = np.arange(n)
    kp = p[:, None, :] + o[rows, best].reshape(n, k, 2)
    sig = _per_keypoint_sigma(s[rows, best][:, None], k, keypoint_scales)[:, 0, :]
    return kp, sig, best, alpha


def find_centres(
    centre: ArrayLike, max_people: int = 20, threshold: float = 0.3, nms_kernel: int = 3
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    """CenterNet peak picking: cells equal to their ``nms_kernel`` neighbourhood max, above ``threshold``,
    the ``max_people`` best per image -> (image index, row, col, score), each (P,), best first per image."""
    hm = np.asarray(centre, dtype=np.float64)
    if hm.ndim == 4 and hm.shape[1] == 1:
        hm = hm[:, 0]
    if hm.ndim != 3:
        raise ValueError(f"centre heatmap must be (B, H, W) or (B, 1, H, W), got {np.shape(centre)}")
    if nms_kernel < 1 or nms_kernel % 2 == 0:
        raise ValueError(f"nms_kernel must be a positive odd integer, got {nms_kernel}")
    b, h, w = hm.shape
    r = nms_kernel // 2
    pad = np.pad(hm, ((0, 0), (r, r), (r, r)), constant_values=-np.inf)
    pooled = np.max(
        [pad[:, dy : dy + h, dx : dx + w] for dy in range(nms_kernel) for dx in range(nms_kernel)], axis=0
    )
    keep = (hm >= pooled) & (hm >= threshold)
    flat = np.where(keep, hm, -np.inf).reshape(b, h * w)
    top = min(max_people, h * w)
    idx = np.argsort(-flat, axis=1, kind="stable")[:, :top]
    val = np.take_along_axis(flat, idx, axis=1)
    ok = np.isfinite(val)
    img = np.broadcast_to(np.arange(b)[:, None], idx.shape)[ok]
    rows, cols = np.divmod(idx[ok], w)
    return img, rows, cols, val[ok]


def mixture_decode(
    centre: ArrayLike,
    offsets: ArrayLike,
    sigma: ArrayLike,
    alpha_logits: ArrayLike,
    max_people: int = 20,
    threshold: float = 0.3,
    nms_kernel: int = 3,
    keypoint_scales: ArrayLike | None = None,
) -> MixtureResult:
    """Bottom-up decoding of a batch: centres by peak picking, then max-alpha component per person.

    People of all images come back flat (P = total), with ``image_index``; keypoints and sigma are in
    heatmap cells (:func:`.geometry.heatmap_to_image` maps them, sigma scales by the stride).
    """
    o = np.asarray(offsets)
    s = np.asarray(sigma)
    a = np.asarray(alpha_logits)
    if o.ndim != 5 or o.shape[2] % 2 or s.shape != o.shape[:2] + o.shape[3:] or a.shape != s.shape:
        raise ValueError(
            "expected offsets (B, M, 2K, H, W), sigma and alpha (B, M, H, W); "
            f"got {o.shape}, {s.shape}, {a.shape}"
        )
    img, rows, cols, scores = find_centres(centre, max_people, threshold, nms_kernel)
    centres = np.stack([cols, rows], axis=-1).astype(np.float64)
    kp, sig, best, alpha = select_component(
        centres,
        o[img, :, :, rows, cols],  # advanced indexing puts the person axis first: (P, M, 2K)
        s[img, :, rows, cols],
        a[img, :, rows, cols],
        keypoint_scales,
    )
    return MixtureResult(img, centres, scores, kp, sig, best, alpha)


class MixturePoseDecoder(Decoder):
    roles = ("centre", "offsets", "sigma", "alpha")
    optional_roles = ("size", "offset")
    params: ClassVar[Mapping[str, Any]] = {
        "stride": 4,
        "centre_channel": 0,
        "centre_activation": "sigmoid",
        "score_threshold": 0.3,
        "max_people": 20,
        "sigma_minimum": 0.25,
        "num_keypoints": 17,
    }
    result = "detections"

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        self.stride = self.number("stride", positive=True)
        self.channel = self.integer("centre_channel", minimum=0)
        self.activation = self.choice("centre_activation", ["sigmoid", "none"])
        self.threshold = self.number("score_threshold", lo=0.0, hi=1.0)
        self.max_people = self.integer("max_people")
        self.sigma_minimum = self.number("sigma_minimum", lo=0.0)
        self.k = self.integer("num_keypoints")

    def __call__(self, outputs: Mapping[str, NDArray]) -> list[Detections]:
        centre = self.output(outputs, "centre", 4)[:, self.channel]
        if self.activation == "sigmoid":
            centre = sigmoid(centre.astype(np.float64))
        off = self.output(outputs, "offsets", 4)
        sig = self.output(outputs, "sigma", 4)
        alpha = self.output(outputs, "alpha", 4)
        b, m = sig.shape[:2]
        if off.shape[1] != m * 2 * self.k:
            raise ValueError(f"offsets have {off.shape[1]} channels, expected M * 2K = {m * 2 * self.k}")
        img, rows, cols, scores = find_centres(centre, self.max_people, self.threshold)
        cells = np.stack([cols, rows], axis=-1).astype(np.float64)
        kp, sigma, _, _ = select_component(
            cells,
            off[img, :, rows, cols].reshape(-1, m, 2 * self.k),
            sigma_from_raw(sig[img, :, rows, cols], self.sigma_minimum),
            alpha[img, :, rows, cols],
        )
        s = self.stride
        xy = kp * s
        if "size" in self.tensors:
            wh = self.output(outputs, "size", 4)[img, :, rows, cols] * s
            ctr = cells
            if "offset" in self.tensors:
                ctr = ctr + self.output(outputs, "offset", 4)[img, :, rows, cols]
            ctr = ctr * s
            boxes = np.concatenate([ctr - wh / 2, ctr + wh / 2], axis=1)
        else:
            boxes = np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1) if len(xy) else np.zeros((0, 4))
        out = []
        for i in range(b):
            sel = img == i
            n = int(sel.sum())
            keypoints = np.concatenate(
                [xy[sel], np.broadcast_to(scores[sel, None, None], (n, self.k, 1))], -1
            )
            out.append(
                Detections(
                    boxes[sel].astype(np.float64),
                    scores[sel],
                    np.full(n, self.channel, dtype=np.int64),
                    keypoints,
                    {"keypoint_sigma": sigma[sel] * s},
                )
            )
        return out
