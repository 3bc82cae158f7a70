"""Top-down heatmap pose ``[B, K, H/s, W/s]`` (SimpleBaseline / HRNet): argmax per channel, with the RSN /
SimpleBaseline post-processing, and its card decoder (``decoder.type: heatmap_argmax``).

Input heatmaps are ``(N, K, H, W)`` (N people, K keypoints); outputs are keypoints ``(N, K, 2)`` float64 in
heatmap coordinates (:mod:`.geometry`: cell centres at integers) and scores ``(N, K)`` = peak value.

- ``refine="quarter"`` moves the peak 0.25 cell toward the higher of its two neighbours on each axis
  (sign of the neighbour difference, SimpleBaseline practice). Without it the estimate is quantised to the
  grid: per-axis error <= 0.5 cell, RMS 1/sqrt(12) ~ 0.289 cell for a uniformly placed true peak.
- RSN testing (rsn_delicate_local_representations.txt, "Testing Details"): Gaussian-filter the heatmaps,
  average with the flipped crop's heatmaps (flipped back, left/right channels swapped), quarter offset;
  pose score = mean keypoint score x box score. :func:`rsn_decode` does exactly that sequence.

:class:`HeatmapArgmaxDecoder` is the card-driven wrapper around :func:`argmax_decode` and the
heatmap-to-input mapping of :mod:`.geometry` (the one place it is defined; ``alignment`` ``legacy``, the
default and what MSRA / GluonCV / mmpose models use, or ``cell``). ``refine_rule`` says where the quarter
shift applies (``mmpose`` default, ``msra`` for MSRA / GluonCV models, ``inner`` for this stack's own).
Score = peak value, after a sigmoid when ``activation: sigmoid``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from perception_pkg.cards.errors import CardError
from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.base import Decoder, sigmoid
from perception_pkg.decoders.pose.geometry import ALIGNMENTS, DEFAULT_ALIGNMENT, heatmap_to_crop
from perception_pkg.decoders.types import Keypoints
from perception_pkg.pose.coco17 import FLIP_PAIRS

# channels per cv2 call: CV_CN_MAX is 512 in OpenCV 4 but 128 in OpenCV 5 (installed here), so use 128
_CV_MAX_CHANNELS = 128


def _check_heatmaps(heatmaps: ArrayLike) -> NDArray:
    hm = np.asarray(heatmaps)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be (N, K, H, W), got shape {hm.shape}")
    return hm


# Where the quarter shift applies (x, y: the peak's column and row on a W x H map):
# "inner": on each axis where the peak has both neighbours (0 < x < W - 1), this stack's rule;
# "mmpose": on each axis on its own, x for 1 < x < W - 1 and 0 < y, y for 1 < y < H - 1 and 0 < x
# (mmpose ``refine_keypoints``);
# "msra": on both axes or neither, only when 1 < x < W - 1 and 1 < y < H - 1 (MSRA SimpleBaseline /
# HRNet and GluonCV ``get_final_preds``).
REFINE_RULES = ("mmpose", "msra", "inner")


def argmax_decode(
    heatmaps: ArrayLike, refine: str = "quarter", rule: str = "inner"
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Peak per channel of ``(N, K, H, W)`` -> (keypoints (N, K, 2) as (x, y), scores (N, K) = peak value).

    ``refine``: ``"quarter"`` (0.25-cell shift toward the higher neighbour) or ``"none"``. ``rule`` says
    where the shift applies (:data:`REFINE_RULES`); every rule skips the border, where the shift would be
    one-sided and the peak is usually the truncated tail of a keypoint outside the crop. The upstream
    rules also skip the first interior row / column (their ``1 < x`` test).
    """
    if refine not in ("quarter", "none"):
        raise ValueError(f"unknown refine {refine!r}; expected 'quarter' or 'none'")
    if rule not in REFINE_RULES:
        raise ValueError(f"unknown refine rule {rule!r}; expected one of {REFINE_RULES}")
    hm = _check_heatmaps(heatmaps)
    n, k, h, w = hm.shape
    flat = hm.reshape(n, k, h * w)
    idx = flat.argmax(axis=-1)
    peak = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0].astype(np.float64)
    y, x = np.divmod(idx, w)
    xy = np.stack([x, y], axis=-1).astype(np.float64)
    if refine == "quarter":

        def at(dy: int, dx: int) -> NDArray:
            yy = np.clip(y + dy, 0, h - 1)
            xx = np.clip(x + dx, 0, w - 1)
            return np.take_along_axis(flat, (yy * w + xx)[..., None], axis=-1)[..., 0].astype(np.float64)

        lo = 0 if rule == "inner" else 1
        ok_x = (x > lo) & (x < w - 1)
        ok_y = (y > lo) & (y < h - 1)
        if rule == "msra":
            ok_x = ok_y = ok_x & ok_y
        elif rule == "mmpose":  # its x test also asks 0 < y, and its y test 0 < x
            ok_x, ok_y = ok_x & (y > 0), ok_y & (x > 0)
        gx = np.where(ok_x, np.sign(at(0, 1) - at(0, -1)), 0.0)
        gy = np.where(ok_y, np.sign(at(1, 0) - at(-1, 0)), 0.0)
        xy += 0.25 * np.stack([gx, gy], axis=-1)
    return xy, peak


def gaussian_blur_heatmaps(
    heatmaps: ArrayLike, kernel: int = 5, keep_peak: bool = True
) -> NDArray[np.float32]:
    """``cv2.GaussianBlur`` of every channel (sigma derived from ``kernel`` as OpenCV does).

    Channels are stacked last so one cv2 call filters up to 128 maps. ``keep_peak`` rescales each channel
    so its maximum equals the unblurred maximum (DARK practice): blurring lowers peaks, and the score is
    read from the peak, so without it scores would depend on the kernel.
    """
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"Gaussian kernel size must be a positive odd integer, got {kernel}")
    hm = _check_heatmaps(heatmaps).astype(np.float32, copy=False)
    n, k, h, w = hm.shape
    stack = np.ascontiguousarray(hm.reshape(n * k, h, w).transpose(1, 2, 0))
    out = np.empty_like(stack)
    for c0 in range(0, n * k, _CV_MAX_CHANNELS):  # chunks of channels, not a loop over people
        chunk = np.ascontiguousarray(stack[..., c0 : c0 + _CV_MAX_CHANNELS])
        blurred = cv2.GaussianBlur(chunk, (kernel, kernel), 0)
        out[..., c0 : c0 + _CV_MAX_CHANNELS] = blurred.reshape(h, w, -1)
    out = out.transpose(2, 0, 1).reshape(n, k, h, w)
    if keep_peak:
        before = hm.reshape(n, k, -1).max(axis=-1)
        after = out.reshape(n, k, -1).max(axis=-1)
        # a channel whose max is <= 0 has no peak to preserve; leave it as blurred
        ratio = np.where(after > 0, before / np.where(after > 0, after, 1.0), 1.0)
        out = out * ratio[..., None, None].astype(np.float32)
    return out


def flip_permutation(num_keypoints: int, flip_pairs: Sequence[tuple[int, int]]) -> NDArray[np.intp]:
    """Channel permutation that swaps each left/right pair (an involution); validated."""
    perm = np.arange(num_keypoints)
    seen: set[int] = set()
    for a, b in flip_pairs:
        if not (0 <= a < num_keypoints and 0 <= b < num_keypoints) or a == b or a in seen or b in seen:
            raise ValueError(f"bad flip pair ({a}, {b}) for {num_keypoints} keypoints")
        seen.update((a, b))
        perm[a], perm[b] = b, a
    return perm


def flip_back(
    heatmaps_flipped: ArrayLike, flip_pairs: Sequence[tuple[int, int]], shift: bool = False
) -> NDArray:
    """Heatmaps of the left-right flipped crop -> heatmaps in the original crop's frame.

    Flip along W and swap left/right channels. Exact for the ``"cell"`` alignment (:mod:`.geometry`);
    ``shift=True`` moves the result one cell right, as HRNet does for its ``"legacy"``-aligned models.
    """
    hm = _check_heatmaps(heatmaps_flipped)
    out = hm[:, flip_permutation(hm.shape[1], flip_pairs), :, ::-1]
    if shift:
        out = np.concatenate([out[..., :1], out[..., :-1]], axis=-1)
    return np.ascontiguousarray(out)


def flip_average(
    heatmaps: ArrayLike,
    heatmaps_flipped: ArrayLike,
    flip_pairs: Sequence[tuple[int, int]],
    shift: bool = False,
) -> NDArray:
    """Mean of the heatmaps and the flipped-back maps of the flipped crop (flip test-time augmentation)."""
    hm = _check_heatmaps(heatmaps)
    back = flip_back(heatmaps_flipped, flip_pairs, shift)
    if back.shape != hm.shape:
        raise ValueError(f"flipped heatmaps {back.shape} do not match heatmaps {hm.shape}")
    return 0.5 * (hm + back)


def rsn_decode(
    heatmaps: ArrayLike,
    heatmaps_flipped: ArrayLike | None = None,
    flip_pairs: Sequence[tuple[int, int]] = FLIP_PAIRS,
    blur_kernel: int | None = 5,
    refine: str = "quarter",
    shift: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """RSN test-time decoding: blur, flip average (when the flipped crop's maps are given), argmax + shift.

    The blur and the flip commute here (symmetric kernel, reflect-101 borders), so the order only matters
    for cost; blurring the averaged maps filters once instead of twice.
    """
    hm = _check_heatmaps(heatmaps)
    if heatmaps_flipped is not None:
        hm = flip_average(hm, heatmaps_flipped, flip_pairs, shift)
    if blur_kernel:
        hm = gaussian_blur_heatmaps(hm, blur_kernel)
    return argmax_decode(hm, refine)


def pose_score(keypoint_scores: ArrayLike, box_scores: ArrayLike | None = None) -> NDArray[np.float64]:
    """Person score: mean keypoint score x box score (CPN/RSN). ``(N, K)``, ``(N,)`` -> ``(N,)``."""
    s = np.asarray(keypoint_scores, dtype=np.float64).mean(axis=-1)
    return s if box_scores is None else s * np.asarray(box_scores, dtype=np.float64)


def hflip_keypoints(
    keypoints: ArrayLike, width: int, flip_pairs: Sequence[tuple[int, int]]
) -> NDArray[np.float64]:
    """Heatmap-coordinate keypoints ``(N, K, 2)`` of a person -> those of the left-right flipped person.

    ``x -> W - 1 - x`` (cell alignment) and left/right keypoints swapped; used to build flipped targets.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    out = kp[:, flip_permutation(kp.shape[1], flip_pairs)].copy()
    out[..., 0] = (width - 1) - out[..., 0]
    return out


class HeatmapArgmaxDecoder(Decoder):
    roles = ("heatmaps",)
    params: ClassVar[Mapping[str, Any]] = {
        "stride": None,
        "activation": "none",
        "refine": "quarter",
        "refine_rule": "mmpose",
        "alignment": DEFAULT_ALIGNMENT,
    }
    result = "keypoints"

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        self.activation = self.choice("activation", ["none", "sigmoid"])
        self.refine = self.choice("refine", ["quarter", "none"])
        self.refine_rule = self.choice("refine_rule", list(REFINE_RULES))
        self.alignment = self.choice("alignment", list(ALIGNMENTS))
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
        cells, peak = argmax_decode(hm, self.refine, self.refine_rule)
        scores = sigmoid(peak.astype(np.float64)) if self.activation == "sigmoid" else peak.astype(np.float64)
        return Keypoints(heatmap_to_crop(cells, self.stride, self.alignment), scores)
