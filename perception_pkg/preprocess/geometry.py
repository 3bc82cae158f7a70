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
    src_hw: tuple[int, int],
    dst_hw: tuple[int, int],
    anchor: str = "center",
    rounding: str = "round",
    inverse: str = "exact",
) -> tuple[AffineTransform, tuple[int, int], tuple[int, int]]:
    """Map of a letterbox resize: returns (transform, resized (h, w), (top, left) padding).

    ``r = min(dh / h, dw / w)``; the resized size is ``round(w r)`` (``rounding="round"``) or ``int(w r)``
    (``"floor"``, YOLOX). ``inverse="exact"``: the per-axis scales are ``new_w / w`` and ``new_h / h``,
    exactly what cv2.resize does with those sizes (the unrounded ratio would be off by up to a pixel at
    the far border). ``inverse="ratio"``: the transform is the one upstream decoders invert instead,
    ``r`` on both axes and, for ``center``, the padding recomputed from the unrounded size as
    ``round((dw - w r) / 2 - 0.1)`` (Ultralytics ``scale_boxes``; YOLOX pads nothing before the
    origin). The returned transform is what results are mapped back with; the image itself is always
    resized to the returned size and padded with the returned padding.
    """
    h, w = src_hw
    dh, dw = dst_hw
    if h <= 0 or w <= 0:
        raise ValueError(f"cannot letterbox an empty image of size {src_hw}")
    r = min(dh / h, dw / w)
    if rounding == "round":
        new_w, new_h = round(w * r), round(h * r)
    elif rounding == "floor":
        new_w, new_h = int(w * r), int(h * r)
    else:
        raise ValueError(f"unknown letterbox rounding {rounding!r}")
    new_w, new_h = min(dw, max(1, new_w)), min(dh, max(1, new_h))
    if anchor == "center":
        # Ultralytics: top = round(dh / 2 - 0.1), i.e. the odd pixel goes to the bottom / right
        top, left = (dh - new_h) // 2, (dw - new_w) // 2
    elif anchor == "top_left":
        top, left = 0, 0
    else:
        raise ValueError(f"unknown letterbox anchor {anchor!r}")
    if inverse == "exact":
        t = AffineTransform.scale_translate(new_w / w, new_h / h, left, top)
    elif inverse == "ratio":
        if anchor == "center":
            pad_x, pad_y = round((dw - w * r) / 2 - 0.1), round((dh - h * r) / 2 - 0.1)
        else:
            pad_x, pad_y = 0, 0
        t = AffineTransform.scale_translate(r, r, pad_x, pad_y)
    else:
        raise ValueError(f"unknown letterbox inverse {inverse!r}")
    return t, (new_h, new_w), (top, left)


def letterbox(
    image: NDArray,
    dst_hw: tuple[int, int],
    pad_value: float = 114.0,
    anchor: str = "center",
    interpolation: str = "linear",
    rounding: str = "round",
    inverse: str = "exact",
) -> tuple[NDArray, AffineTransform]:
    """Resize keeping the aspect ratio, pad the rest with ``pad_value`` (conventions: letterbox_transform)."""
    h, w = image.shape[:2]
    transform, (new_h, new_w), (top, left) = letterbox_transform((h, w), dst_hw, anchor, rounding, inverse)
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


def _topdown_box(
    boxes: ArrayLike, dst_hw: tuple[int, int], aspect_ratio: float | None, padding: float, aspect: str
) -> tuple[NDArray[np.float64], ...]:
    """Centre and size of each crop region: the box, widened or heightened to the aspect ratio
    (``aspect="expand"``) and enlarged by ``padding`` (mmpose ``bbox_xyxy2cs`` + ``_fix_aspect_ratio``)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    dh, dw = dst_hw
    ar = float(aspect_ratio) if aspect_ratio else dw / dh
    cx = (b[:, 0] + b[:, 2]) / 2
    cy = (b[:, 1] + b[:, 3]) / 2
    bw = np.maximum(b[:, 2] - b[:, 0], 1e-6)
    bh = np.maximum(b[:, 3] - b[:, 1], 1e-6)
    if aspect == "expand":
        wider = bw > ar * bh
        bw, bh = np.where(wider, bw, bh * ar), np.where(wider, bw / ar, bh)
    elif aspect != "stretch":
        raise ValueError(f"unknown top-down aspect {aspect!r}; expected 'expand' or 'stretch'")
    return cx, cy, bw * padding, bh * padding


def _cv2_crop_matrices(
    cx: NDArray, cy: NDArray, bw: NDArray, bh: NDArray, dst_hw: tuple[int, int], uniform: bool
) -> NDArray[np.float64]:
    """The image -> crop maps GluonCV (``get_affine_transform``) and mmpose (``get_warp_matrix``) build,
    in OpenCV's pixel-centre convention: ``cv2.getAffineTransform`` of three float32 point pairs, the box
    centre to the crop centre ``(w / 2, h / 2)``, the point half a box width beside it to the point half
    a crop width beside the crop centre, and (``uniform``) a third point a quarter turn from those two,
    or (mmpose ``fix_aspect_ratio=False``) the point half a box height above the centre. Three points per
    box, not a loop over pixels."""
    dh, dw = dst_hw
    n = cx.shape[0]
    if n == 0:  # a frame without people: no crops, an empty batch of maps
        return np.zeros((0, 2, 3))
    src = np.zeros((n, 3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    # points are summed in float64 and stored as float32, the third from the float32 two, as upstream does
    centre = np.stack([cx, cy], axis=-1)
    src[:, 0] = centre
    src[:, 1] = centre + np.stack([bw * -0.5, np.zeros(n)], axis=-1)
    dst[0] = (dw * 0.5, dh * 0.5)
    dst[1] = np.array([dw * 0.5 - dw * 0.5, dh * 0.5])
    if uniform:
        d = src[:, 0] - src[:, 1]
        src[:, 2] = src[:, 1] + np.stack([-d[:, 1], d[:, 0]], axis=-1)
        e = dst[0] - dst[1]
        dst[2] = dst[1] + np.array([-e[1], e[0]], dtype=np.float32)
    else:
        src[:, 2] = centre + np.stack([np.zeros(n), bh * -0.5], axis=-1)
        dst[2] = (dw * 0.5, dh * 0.5 - dh * 0.5)
    return np.stack([cv2.getAffineTransform(src[i], dst) for i in range(n)]).reshape(n, 2, 3)


def topdown_transform(
    boxes: ArrayLike,
    dst_hw: tuple[int, int],
    aspect_ratio: float | None = None,
    padding: float = 1.25,
    crop: str = "exact",
    aspect: str = "expand",
) -> AffineTransform:
    """Maps of top-down person crops, one per xyxy box (SimpleBaseline/HRNet practice).

    The box is widened or heightened to ``aspect_ratio`` (width / height, default the input's) around its
    centre (``aspect="expand"``; ``"stretch"`` keeps the box's own shape), enlarged by ``padding``, and:

    - ``crop="exact"``: that region maps onto the whole input in the stack's continuous convention (the
      region's left edge lands on the crop's left edge);
    - ``crop="cv2"``: the map GluonCV and mmpose build with ``cv2.getAffineTransform``, which treats the
      box numbers as pixel-centre coordinates (the region's left edge lands on the *centre* of the first
      crop pixel). Expressed here in the stack's convention, so its ``cv_matrix()`` is the matrix they
      pass to ``cv2.warpAffine``. With ``aspect="stretch"`` it is mmpose's ``fix_aspect_ratio=False`` map.
    """
    cx, cy, bw, bh = _topdown_box(boxes, dst_hw, aspect_ratio, padding, aspect)
    dh, dw = dst_hw
    if crop == "exact":
        sx, sy = dw / bw, dh / bh
        return AffineTransform.scale_translate(sx, sy, -(cx - bw / 2) * sx, -(cy - bh / 2) * sy)
    if crop != "cv2":
        raise ValueError(f"unknown top-down crop {crop!r}; expected 'cv2' or 'exact'")
    # float32 points of a (near) zero-size box would coincide and give a singular map: keep them apart
    min_size = np.maximum(1e-2, 1e-6 * np.maximum(np.abs(cx), np.abs(cy)))
    cv = _cv2_crop_matrices(
        cx, cy, np.maximum(bw, min_size), np.maximum(bh, min_size), dst_hw, uniform=aspect == "expand"
    )
    # x_edge = x_cv + 0.5 on both sides: t_edge = t_cv - L (0.5, 0.5) + 0.5 (the inverse of cv_matrix)
    lin = cv[..., :2]
    t = cv[..., 2] - lin @ np.array([0.5, 0.5]) + 0.5
    return AffineTransform(np.concatenate([lin, t[..., None]], axis=-1))


def warp_crops_affine(
    image: NDArray,
    transform: AffineTransform,
    dst_hw: tuple[int, int],
    pad_value: float = 0.0,
    interpolation: str = "linear",
) -> NDArray:
    """Each crop of a batched transform by its own ``cv2.warpAffine`` call, as GluonCV and mmpose sample
    them: same pixels bit for bit (warpAffine's fixed-point sampling differs from remap's in the last
    bit). One call per person, not per pixel. Returns (N, h, w, C)."""
    if not transform.batched:
        transform = AffineTransform(transform.matrix[None])
    dh, dw = dst_hw
    channels = 1 if image.ndim == 2 else image.shape[2]
    out = np.empty((len(transform), dh, dw, channels), dtype=image.dtype)
    for i, m in enumerate(transform.cv_matrix()):
        warped = cv2.warpAffine(
            image,
            m,
            (dw, dh),
            flags=INTERPOLATION[interpolation],
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=_border(pad_value),
        )
        out[i] = warped.reshape(dh, dw, channels)
    return out


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
    crop: str = "exact",
    aspect: str = "expand",
) -> tuple[NDArray, AffineTransform]:
    """Crops ``(N, h, w, C)`` around each box and their batched maps (conventions: topdown_transform);
    ``crop="cv2"`` samples with cv2.warpAffine per crop as upstream does, ``"exact"`` with one remap."""
    transform = topdown_transform(boxes, dst_hw, aspect_ratio, padding, crop, aspect)
    warp = warp_crops_affine if crop == "cv2" else warp_crops
    return warp(image, transform, dst_hw, pad_value, interpolation), transform


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
