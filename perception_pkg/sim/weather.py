"""Adverse-weather and sensor degradations of a clean frame, pixel-aligned with it, severities 1-5.

- ``fog``: physical, from the depth buffer: I = J t + A (1 - t), t = exp(-beta d), d = distance along
  the pixel's ray (sky: d = inf, so I = A). beta per severity gives a meteorological visibility
  (3 / beta, 5% contrast) of 400, 200, 100, 50, 25 m. Applied to the 8-bit values scaled to [0, 1]
  (display-referred, as the usual synthetic-fog datasets do).
- ``rain`` (SPECS, ours): sparse thresholded noise -> near-vertical motion blur (a line kernel) ->
  bright streaks blended over a slightly dimmed, lower-contrast image.
- ``snow``, ``noise`` (Gaussian sensor noise), ``motion_blur``: ``imagecorruptions`` (the ImageNet-C
  implementations) at the same severity.
- ``night`` (SPECS, ours): x' = g x^gamma, gamma 2 -> 3 and g 0.3 -> 0.1 over severities 1 -> 5, then
  shot noise Poisson(x' P) / P with P photons at full white (400 -> 60).

Every degradation takes a seed; the same (image, kind, severity, seed) gives the same bytes.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from perception_pkg.sim.sensors import CameraSpec

WEATHER_KINDS: tuple[str, ...] = ("fog", "rain", "snow", "night", "noise", "motion_blur")

FOG_BETA = (3 / 400, 3 / 200, 3 / 100, 3 / 50, 3 / 25)  # 1/m
FOG_AIRLIGHT = np.array([0.80, 0.81, 0.83], np.float32)  # slightly blue-grey
NIGHT_GAMMA = (2.0, 2.25, 2.5, 2.75, 3.0)
NIGHT_GAIN = (0.3, 0.25, 0.2, 0.15, 0.1)
NIGHT_PHOTONS = (400.0, 250.0, 160.0, 100.0, 60.0)
# rain: drop density (share of pixels seeding a streak), streak length (px), streak opacity, dimming
RAIN_DENSITY = (0.002, 0.004, 0.007, 0.011, 0.016)
RAIN_LENGTH = (10, 15, 20, 26, 32)
RAIN_ALPHA = (0.45, 0.55, 0.65, 0.72, 0.8)
RAIN_DIM = (0.05, 0.1, 0.15, 0.2, 0.25)


@lru_cache(maxsize=1)
def _corruptions() -> types.ModuleType:
    """imagecorruptions' functions module.

    imagecorruptions 1.1.2 imports ``pkg_resources`` at module level (only the frost corruption
    uses it), and setuptools >= 81 no longer ships it. Give it a stand-in that resolves package
    files just for that import, and remove it again so nobody else mistakes it for the real one.
    """
    shim_added = False
    if importlib.util.find_spec("pkg_resources") is None:
        shim = types.ModuleType("pkg_resources")

        def resource_filename(package: str, resource: str) -> str:
            spec = importlib.util.find_spec(package)
            assert spec is not None and spec.origin is not None
            return str(Path(spec.origin).parent / resource)

        shim.resource_filename = resource_filename  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim
        shim_added = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # scipy.ndimage.interpolation
            from imagecorruptions import corruptions
    finally:
        if shim_added:
            sys.modules.pop("pkg_resources", None)
    return corruptions


@contextmanager
def _legacy_seed(seed: int) -> Iterator[None]:
    """imagecorruptions draws from numpy's global RandomState: seed it, then restore it.

    Not thread-safe (the global state is shared); degradations run on one thread.
    """
    state = np.random.get_state()  # noqa: NPY002 - the legacy global state is what it reads
    np.random.seed(seed & 0xFFFFFFFF)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def derive_seed(*key: int | str) -> int:
    """A 32-bit seed from a key such as (scene seed, frame, kind, severity)."""
    ints = [
        sum(ord(c) << (8 * i) for i, c in enumerate(k)) if isinstance(k, str) else abs(int(k)) for k in key
    ]
    return int(np.random.SeedSequence(ints).generate_state(1)[0])


def ray_distance(depth: np.ndarray, camera: CameraSpec) -> np.ndarray:
    """Distance along each pixel's ray (m) from the Z-depth buffer: d = Z * |(x_n, y_n, 1)|."""
    h, w = depth.shape
    xn = (np.arange(w, dtype=np.float32) - camera.cx) / camera.fx
    yn = (np.arange(h, dtype=np.float32) - camera.cy) / camera.fy
    return depth * np.sqrt(1.0 + xn[None, :] ** 2 + yn[:, None] ** 2)


def fog(image: np.ndarray, distance: np.ndarray, beta: float, airlight=FOG_AIRLIGHT) -> np.ndarray:
    """Koschmieder fog on a float image in [0, 1]: I = J t + A (1 - t), t = exp(-beta d)."""
    t = np.exp(-beta * distance.astype(np.float32))[..., None]  # inf -> t = 0: sky becomes airlight
    return image * t + np.asarray(airlight, np.float32) * (1.0 - t)


def night(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Low light on a float image in [0, 1]: g x^gamma, then photon shot noise."""
    s = severity - 1
    dark = NIGHT_GAIN[s] * np.power(image, NIGHT_GAMMA[s])
    photons = NIGHT_PHOTONS[s]
    return rng.poisson(dark * photons) / photons


def rain(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Rain streaks on a float image in [0, 1]."""
    s = severity - 1
    h, w = image.shape[:2]
    drops = (rng.random((h, w)) < RAIN_DENSITY[s]).astype(np.float32)
    length = RAIN_LENGTH[s]
    angle = np.radians(rng.uniform(-12.0, 12.0))  # near vertical, one wind direction per image
    size = length | 1
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = np.sin(angle) * c, np.cos(angle) * c
    cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, cv2.LINE_AA)
    kernel /= kernel.max()
    streaks = cv2.filter2D(drops, -1, kernel, borderType=cv2.BORDER_REFLECT)
    streaks = np.clip(cv2.GaussianBlur(streaks, (3, 3), 0.7), 0.0, 1.0)[..., None]
    dim = RAIN_DIM[s]
    base = image * (1.0 - dim) + dim * 0.45  # overcast: darker and flatter
    alpha = RAIN_ALPHA[s] * streaks
    return base * (1.0 - alpha) + 0.9 * alpha


def degrade(
    image: np.ndarray, kind: str, severity: int, *, distance: np.ndarray | None = None, seed: int = 0
) -> np.ndarray:
    """Degraded copy of an RGB uint8 image, same size. ``fog`` needs the per-pixel ``distance``."""
    if kind not in WEATHER_KINDS:
        raise ValueError(f"unknown degradation {kind!r}; choose from {WEATHER_KINDS}")
    if not 1 <= severity <= 5:
        raise ValueError("severity must be 1..5")
    x = image.astype(np.float32) / 255.0
    rng = np.random.default_rng(seed)
    if kind == "fog":
        if distance is None:
            raise ValueError("fog needs the distance (depth) image")
        out = fog(x, distance, FOG_BETA[severity - 1])
    elif kind == "night":
        out = night(x, severity, rng)
    elif kind == "rain":
        out = rain(x, severity, rng)
    else:
        fn = {"snow": "snow", "noise": "gaussian_noise", "motion_blur": "motion_blur"}[kind]
        with _legacy_seed(seed):
            out = np.asarray(getattr(_corruptions(), fn)(image, severity), np.float32) / 255.0
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
