"""Resize policies (letterbox, stretch, top-down person crops), each returning the exact map it applied.

The returned :class:`AffineTransform` maps source-image coordinates to network-input coordinates, so
``transform.inverse()`` brings decoded boxes and keypoints back to the camera image.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from perception_pkg.preprocess.affine import AffineTransform

INTERPOLATION = {
    "linear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,
    "area": cv2.INTER_AREA,
    "cubic": cv2.INTER_CUBIC,
}
# cv2.remap indexes destination rows with 16-bit integers internally on some paths
_REMAP_MAX_ROWS = 32000


def _border(pad_value: float) -> tuple[float, float, float, float]:
    return (float(pad_value),) * 4


def letterbox_transform(
    src_hw: tuple[int, int], dst_hw: tuple[int, int], anchor: str = "center"
) -> tuple[AffineTransform, tuple[int, int], tuple[int, int]]:
    """Map of a letterbox resize: returns (transform, resized (h, w), (top, left) padding).

    The per-axis scales are ``new_w / w`` and ``new_h / h`` after rounding the resized size, which is
    exactly what cv2.resize does with those sizes; using the unrounded ratio would be off by up to half
    a pixel at the far border.
    """
    h, w = src_hw
    dh, dw = dst_hw
    r = min(dh / h, dw / w)
    new_w = min(dw, max(1, round(w * r)))
    new_h = min(dh, max(1, round(h * r)))
    if anchor == "center":
        top, left = (dh - new_h) // 2, (dw - new_w) // 2
    elif anchor == "top_left":
        top, left = 0, 0
    else:
        raise ValueError(f"unknown letterbox anchor {anchor!r}")
    t = AffineTransform.scale_translate(new_w / w, new_h / h, left, top)
    return t, (new_h, new_w), (top, left)


def letterbox(
    image: NDArray,
    dst_hw: tuple[int, int],
    pad_value: float = 114.0,
    anchor: str = "center",
    interpolation: str = "linear",
) -> tuple[NDArray, AffineTransform]:
    """Resize keeping the aspect ratio, pad the rest with ``pad_value``."""
    h, w = image.shape[:2]
    transform, (new_h, new_w), (top, left) = letterbox_transform((h, w), dst_hw, anchor)
    resized = (
        image
        if (new_h, new_w) == (h, w)
        else cv2.resize(image, (new_w, new_h), interpolation=INTERPOLATION[interpolation])
    )
    dh, dw = dst_hw
    if (new_h, new_w) == (dh, dw):  # nothing to pad: the border copy would be a plain copy
        out = resized
    else:
        out = cv2.copyMakeBorder(
            resized,
            top,
            dh - new_h - top,
            left,
            dw - new_w - left,
            cv2.BORDER_CONSTANT,
            value=_border(pad_value),
        )
    if image.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return out, transform


def stretch(
    image: NDArray, dst_hw: tuple[int, int], interpolation: str = "linear"
) -> tuple[NDArray, AffineTransform]:
    """Resize each axis to the input size independently (no padding, aspect ratio not kept)."""
    h, w = image.shape[:2]
    dh, dw = dst_hw
    transform = AffineTransform.scale_translate(dw / w, dh / h, 0.0, 0.0)
    out = (
        image
        if (h, w) == (dh, dw)
        else cv2.resize(image, (dw, dh), interpolation=INTERPOLATION[interpolation])
    )
    if image.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return out, transform


def topdown_transform(
    boxes: ArrayLike, dst_hw: tuple[int, int], aspect_ratio: float | None = None, padding: float = 1.25
) -> AffineTransform:
    """Maps of top-down person crops, one per xyxy box (SimpleBaseline/HRNet practice).

    The box is widened or heightened to ``aspect_ratio`` (width / height, default the input's) around its
    centre, enlarged by ``padding``, and that region maps onto the whole input.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    dh, dw = dst_hw
    ar = float(aspect_ratio) if aspect_ratio else dw / dh
    cx = (b[:, 0] + b[:, 2]) / 2
    cy = (b[:, 1] + b[:, 3]) / 2
    bw = np.maximum(b[:, 2] - b[:, 0], 1e-6)
    bh = np.maximum(b[:, 3] - b[:, 1], 1e-6)
    wider = bw > ar * bh
    bw, bh = np.where(wider, bw, bh * ar), np.where(wider, bw / ar, bh)
    bw, bh = bw * padding, bh * padding
    sx, sy = dw / bw, dh / bh
    return AffineTransform.scale_translate(sx, sy, -(cx - bw / 2) * sx, -(cy - bh / 2) * sy)


def warp_crops(
    image: NDArray,
    transform: AffineTransform,
    dst_hw: tuple[int, int],
    pad_value: float = 0.0,
    interpolation: str = "linear",
) -> NDArray:
    """Sample every crop of a batched transform with one cv2.remap call: returns (N, h, w, C)."""
    if not transform.batched:
        transform = AffineTransform(transform.matrix[None])
    n = len(transform)
    dh, dw = dst_hw
    channels = 1 if image.ndim == 2 else image.shape[2]
    out = np.empty((n, dh, dw, channels), dtype=image.dtype)
    if n == 0:
        return out
    inv = transform.inverse().cv_matrix()  # dst (cv convention) -> src (cv convention)
    jj = np.arange(dw, dtype=np.float64)[None, None, :]
    ii = np.arange(dh, dtype=np.float64)[None, :, None]
    # axis-aligned maps (scale + translate: every top-down crop) are separable: x depends on the column
    # only, y on the row only; the same float64 sums (the cross terms are exact zeros), broadcast
    separable = not np.any(inv[:, 0, 1]) and not np.any(inv[:, 1, 0])
    per_chunk = max(1, _REMAP_MAX_ROWS // dh)
    for start in range(0, n, per_chunk):
        m = inv[start : start + per_chunk, :, :, None, None]
        k = m.shape[0]
        if separable:
            map_x = np.empty((k, dh, dw), dtype=np.float32)
            map_y = np.empty((k, dh, dw), dtype=np.float32)
            map_x[:] = (m[:, 0, 0] * jj + m[:, 0, 2]).astype(np.float32)
            map_y[:] = (m[:, 1, 1] * ii + m[:, 1, 2]).astype(np.float32)
        else:
            map_x = (m[:, 0, 0] * jj + m[:, 0, 1] * ii + m[:, 0, 2]).astype(np.float32)
            map_y = (m[:, 1, 0] * jj + m[:, 1, 1] * ii + m[:, 1, 2]).astype(np.float32)
        warped = cv2.remap(
            image,
            map_x.reshape(k * dh, dw),
            map_y.reshape(k * dh, dw),
            INTERPOLATION[interpolation],
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=_border(pad_value),
        )
        out[start : start + k] = warped.reshape(k, dh, dw, channels)
    return out


def topdown_crops(
    image: NDArray,
    boxes: ArrayLike,
    dst_hw: tuple[int, int],
    aspect_ratio: float | None = None,
    padding: float = 1.25,
    pad_value: float = 0.0,
    interpolation: str = "linear",
) -> tuple[NDArray, AffineTransform]:
    """Crops ``(N, h, w, C)`` around each box and their batched maps."""
    transform = topdown_transform(boxes, dst_hw, aspect_ratio, padding)
    return warp_crops(image, transform, dst_hw, pad_value, interpolation), transform


def unwarp_image(
    net_image: NDArray,
    transform: AffineTransform,
    src_hw: tuple[int, int],
    interpolation: str = "linear",
    border_value: float = 0.0,
) -> NDArray:
    """Inverse of a resize for images (e.g. a restored frame back to camera size and framing)."""
    h, w = src_hw
    out = cv2.warpAffine(
        net_image,
        transform.inverse().cv_matrix(),
        (w, h),
        flags=INTERPOLATION[interpolation],
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=_border(border_value),
    )
    if net_image.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return out
