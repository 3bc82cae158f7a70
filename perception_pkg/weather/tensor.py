"""Image <-> tensor helpers of the weather models (numpy; training converts to torch itself).

The generators read and write RGB in ``[-1, 1]`` (``x / 127.5 - 1``, tanh output), ForkGAN's convention;
the curve baseline reads and writes ``[0, 1]``. Layout NCHW float32.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

RANGES = ("tanh", "unit")


def to_tensor(images: NDArray[np.uint8], value_range: str = "tanh", bgr: bool = False) -> NDArray[np.float32]:
    """(H, W, 3) or (N, H, W, 3) uint8 (RGB, or BGR with ``bgr``) -> (N, 3, H, W) float32 RGB."""
    if value_range not in RANGES:
        raise ValueError(f"value_range must be one of {RANGES}, got {value_range!r}")
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) images, got shape {x.shape}")
    if bgr:
        x = x[..., ::-1]
    t = np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
    return t * 2.0 - 1.0 if value_range == "tanh" else t


def from_tensor(t: NDArray, value_range: str = "tanh", bgr: bool = False) -> NDArray[np.uint8]:
    """(N, 3, H, W) float -> (N, H, W, 3) uint8 (RGB, or BGR with ``bgr``), rounded and clipped."""
    if value_range not in RANGES:
        raise ValueError(f"value_range must be one of {RANGES}, got {value_range!r}")
    t = np.asarray(t, dtype=np.float32)
    if t.ndim != 4 or t.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W), got shape {t.shape}")
    unit = (t + 1.0) * 0.5 if value_range == "tanh" else t
    x = np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x[..., ::-1] if bgr else x)
