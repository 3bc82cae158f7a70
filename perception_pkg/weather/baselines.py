"""Classical restorations a user would pick instead of a network (numpy + OpenCV, BGR uint8 in and out).

- :func:`identity`: do nothing.
- :func:`clahe_luminance`: contrast-limited adaptive histogram equalisation of L* in CIELAB (colour kept).
- :func:`auto_exposure`: gamma / auto-exposure for night: the gamma that maps the frame's mean luminance
  to ``target``, applied per channel through a lookup table (bounded to ``[gamma_min, 1]``: it only
  brightens, never darkens a frame).
- :func:`dark_channel_dehaze`: He et al.'s dark channel prior. dark = min over a ``patch`` x ``patch``
  window of the min over channels; atmospheric light A = mean colour of the brightest 0.1 % of the dark
  channel; t = 1 - omega * dark(I / A), refined by a guided filter (OpenCV ximgproc if present, else the
  box-filter guided filter of He et al. 2010, :func:`guided_filter`), J = (I - A) / max(t, t0) + A.

Every function returns a new array of the input's shape; none modifies its input.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]


def identity(bgr: Image) -> Image:
    return bgr.copy()


def clahe_luminance(bgr: Image, clip_limit: float = 2.0, tiles: int = 8) -> Image:
    """CLAHE on the L* channel of CIELAB, a and b kept."""
    lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB)
    clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, tiles))
    lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


def auto_exposure(bgr: Image, target: float = 0.45, gamma_min: float = 0.25) -> Image:
    """x' = x^gamma with gamma = log(target) / log(mean luminance), clipped to [gamma_min, 1]."""
    luma = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float64) / 255.0
    mean = float(np.clip(luma.mean(), 1e-4, 0.9999))
    gamma = float(np.clip(np.log(target) / np.log(mean), gamma_min, 1.0))
    lut = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** gamma), 0, 255).astype(np.uint8)
    return cv2.LUT(bgr, lut)


def guided_filter(guide: NDArray, src: NDArray, radius: int, eps: float) -> NDArray[np.float32]:
    """He et al.'s guided filter with box means (grey guide), O(1) per pixel in the radius."""
    ksize = (2 * radius + 1, 2 * radius + 1)

    def mean(x: NDArray) -> NDArray:
        return cv2.boxFilter(x, cv2.CV_32F, ksize, borderType=cv2.BORDER_REFLECT)

    i = guide.astype(np.float32)
    p = src.astype(np.float32)
    mi, mp = mean(i), mean(p)
    cov = mean(i * p) - mi * mp
    var = mean(i * i) - mi * mi
    a = cov / (var + eps)
    b = mp - a * mi
    return mean(a) * i + mean(b)


def _guided(guide: NDArray, src: NDArray, radius: int, eps: float) -> NDArray[np.float32]:
    ximgproc = getattr(cv2, "ximgproc", None)
    if ximgproc is not None:
        return ximgproc.guidedFilter(guide.astype(np.float32), src.astype(np.float32), radius, eps)
    return guided_filter(guide, src, radius, eps)


def dark_channel(image: NDArray, patch: int) -> NDArray:
    """Min over channels, then min over a patch x patch window (grey erosion)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (patch, patch))
    return cv2.erode(image.min(axis=2), kernel, borderType=cv2.BORDER_REFLECT)


HAZE_THUMBNAIL = (160, 120)  # width, height: the classifier's thumbnail
HAZE_PATCH = 7


def haze_density(bgr: Image) -> float:
    """How dense a haze is, in [0, 1]: the mean dark channel (He et al.: near 0 in haze-free outdoor
    scenes, rising with the airlight a haze adds) of a 160x120 area thumbnail with 7x7 patches. On the
    simulator's fog it grows with severity (tuning seeds, medians: clear 0.25, s1 0.38, s2 0.43, s3 0.50,
    s4 0.59, s5 0.67); night frames are near 0. About 0.3 ms a 640x480 frame."""
    thumb = cv2.resize(bgr, HAZE_THUMBNAIL, interpolation=cv2.INTER_AREA)
    return float(dark_channel(thumb, HAZE_PATCH).mean()) / 255.0


def dark_channel_dehaze(
    bgr: Image,
    patch: int = 15,
    omega: float = 0.95,
    t0: float = 0.1,
    radius: int = 40,
    eps: float = 1e-3,
    top: float = 0.001,
) -> Image:
    """Dark-channel-prior dehazing (module docstring); ``top`` is the share of the dark channel that
    estimates the atmospheric light."""
    x = bgr.astype(np.float32) / 255.0
    dark = dark_channel(x, patch)
    n = max(round(dark.size * top), 1)
    idx = np.argpartition(dark.ravel(), dark.size - n)[-n:]
    airlight = np.maximum(x.reshape(-1, 3)[idx].mean(axis=0), 1e-3)
    t = 1.0 - omega * dark_channel(x / airlight, patch)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    t = _guided(gray, t, radius, eps)
    j = (x - airlight) / np.maximum(t, t0)[..., None] + airlight
    return (np.clip(j, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


BASELINES: dict[str, Callable[[Image], Image]] = {
    "identity": identity,
    "clahe": clahe_luminance,
    "gamma": auto_exposure,
    "dcp": dark_channel_dehaze,
}
