"""Heatmap grid <-> crop pixels <-> source image: the one definition the pose decoders share.

Frames
------
- **Heatmap coordinates** ``u`` (what every pose decoder returns): 0-based, the centre of heatmap cell
  ``(row i, col j)`` is at ``u = (j, i)``; sub-cell values are allowed. Points are ``(..., 2)`` as ``(x, y)``.
- **Crop coordinates** ``x`` (the network input): the stack's continuous convention
  (``perception_pkg/preprocess/affine.py``): pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``, so its
  centre is at ``j + 0.5``.
- **Image coordinates**: the same continuous convention in the source image; the crop was produced by an
  affine ``image -> crop`` map (2x3, or a batch (N, 2, 3), one per person).

Alignment of the heatmap grid on the crop (``stride`` s = crop size / heatmap size per axis):
- ``"legacy"`` (the card decoders' default, ``DEFAULT_ALIGNMENT``): cell ``u`` sits on the crop *pixel
  centre* ``u s`` of OpenCV's integer-centred frame, i.e. ``x = u s + 0.5`` here. This is what nearly
  every published heatmap model does: MSRA SimpleBaseline / HRNet and GluonCV (targets at
  ``int(x / s + 0.5)``, decoded by ``transform_preds`` with the heatmap-sized affine), mmpose's
  ``MSRAHeatmap`` codec (``keypoints * scale_factor``) and integral heads (``arange(W) / W`` times the
  input size), RTMPose's SimCC bins (``locs / split_ratio``). Flipping is off by ``1 - 1/s`` cells under
  this convention (hence HRNet's one-cell ``shift_heatmap``).
- ``"cell"``: heatmap cell ``u`` summarises the crop pixels ``[u s, (u + 1) s)``, so its centre is at
  ``x = (u + 0.5) s``. A heatmap flipped left-right is then exactly the heatmap of the flipped crop
  (cell ``u`` <-> ``W - 1 - u``); this stack's own pose models (``training/pose_train.py``) are trained
  this way, and their cards say ``alignment: cell``.

The two differ by ``(s - 1) / 2`` crop pixels (1.5 px at stride 4), which a wrong card turns into a
systematic keypoint offset of that many crop pixels times the crop-to-image scale. The functions below
keep ``"cell"`` as their keyword default for the training code that calls them; cards go through the
decoders, whose default is ``"legacy"``.

The card-driven pose decoders (:mod:`.heatmap_argmax`, :mod:`.integral`, :mod:`.mass_displacement`)
use these functions; there is no second copy.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

ALIGNMENTS = ("cell", "legacy")
# what a pose card gets without an ``alignment`` field: the convention of most published models (above)
DEFAULT_ALIGNMENT = "legacy"


def _stride_xy(stride: float | tuple[float, float] | ArrayLike) -> NDArray[np.float64]:
    s = np.broadcast_to(np.asarray(stride, dtype=np.float64), (2,)).copy()
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError(f"stride must be positive and finite, got {stride!r}")
    return s


def _check_alignment(alignment: str) -> None:
    if alignment not in ALIGNMENTS:
        raise ValueError(f"unknown heatmap alignment {alignment!r}; expected one of {ALIGNMENTS}")


def heatmap_to_crop(
    u: ArrayLike, stride: float | tuple[float, float] | ArrayLike, alignment: str = "cell"
) -> NDArray[np.float64]:
    """Heatmap coordinates ``(..., 2)`` -> crop (network-input) pixel coordinates ``(..., 2)``.

    ``stride`` is a scalar or ``(sx, sy)`` (crop width / heatmap width, crop height / heatmap height).
    """
    _check_alignment(alignment)
    s = _stride_xy(stride)
    u = np.asarray(u, dtype=np.float64)
    return (u + 0.5) * s if alignment == "cell" else u * s + 0.5


def crop_to_heatmap(
    x: ArrayLike, stride: float | tuple[float, float] | ArrayLike, alignment: str = "cell"
) -> NDArray[np.float64]:
    """Exact inverse of :func:`heatmap_to_crop` (used to build training targets and in tests)."""
    _check_alignment(alignment)
    s = _stride_xy(stride)
    x = np.asarray(x, dtype=np.float64)
    return x / s - 0.5 if alignment == "cell" else (x - 0.5) / s


def stride_from_shapes(crop_hw: tuple[int, int], heatmap_hw: tuple[int, int]) -> NDArray[np.float64]:
    """``(sx, sy)`` from the crop and heatmap sizes, e.g. 256x192 with 64x48 maps -> (4, 4)."""
    (ch, cw), (hh, hw) = crop_hw, heatmap_hw
    return np.array([cw / hw, ch / hh], dtype=np.float64)


def _affine_apply(matrix: NDArray[np.float64], p: NDArray[np.float64]) -> NDArray[np.float64]:
    lin, t = matrix[..., :2], matrix[..., 2]
    if matrix.ndim == 2:
        return p @ lin.T + t
    n = matrix.shape[0]
    if p.shape[0] != n:
        raise ValueError(f"batched transform of {n} maps got points with leading dim {p.shape[0]}")
    flat = p.reshape(n, -1, 2)
    return (np.einsum("nij,nkj->nki", lin, flat) + t[:, None, :]).reshape(p.shape)


def _affine_matrix(m: ArrayLike) -> NDArray[np.float64]:
    m = np.asarray(getattr(m, "matrix", m), dtype=np.float64)  # accepts preprocess.AffineTransform too
    if m.shape[-2:] != (2, 3) or m.ndim not in (2, 3):
        raise ValueError(f"affine matrix must have shape (2, 3) or (N, 2, 3), got {m.shape}")
    return m


def invert_affine(image_to_crop: ArrayLike) -> NDArray[np.float64]:
    """Exact inverse of a 2x3 (or (N, 2, 3)) affine map, as a 2x3 (or (N, 2, 3)) matrix."""
    m = _affine_matrix(image_to_crop)
    inv = np.linalg.inv(m[..., :2])
    return np.concatenate([inv, -inv @ m[..., 2:]], axis=-1)


def heatmap_to_image(
    u: ArrayLike,
    stride: float | tuple[float, float] | ArrayLike,
    image_to_crop: ArrayLike,
    alignment: str = "cell",
) -> NDArray[np.float64]:
    """Heatmap coordinates -> source-image coordinates through the inverse of the crop's affine map.

    ``u`` is ``(K, 2)`` with one (2, 3) map, or ``(N, K, 2)`` with a batch of N maps (person ``n`` uses map
    ``n``). The inverse is computed, not looked up, so it is exact for any non-degenerate crop.
    """
    crop = heatmap_to_crop(u, stride, alignment)
    return _affine_apply(invert_affine(image_to_crop), crop)


def image_to_heatmap(
    p: ArrayLike,
    stride: float | tuple[float, float] | ArrayLike,
    image_to_crop: ArrayLike,
    alignment: str = "cell",
) -> NDArray[np.float64]:
    """Inverse of :func:`heatmap_to_image` (ground truth -> heatmap targets)."""
    crop = _affine_apply(_affine_matrix(image_to_crop), np.asarray(p, dtype=np.float64))
    return crop_to_heatmap(crop, stride, alignment)


def grid_xy(h: int, w: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Heatmap-coordinate grids ``(x, y)`` of shape (H, W): the positions the decoders weight or move."""
    y, x = np.mgrid[0:h, 0:w]
    return x.astype(np.float64), y.astype(np.float64)
