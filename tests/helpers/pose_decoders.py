"""Shared synthetic heatmaps for the pose decoder tests (numpy only)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def gaussian_maps(mu: NDArray, h: int, w: int, sigma: float = 2.0, amplitude: float = 1.0) -> NDArray:
    """Gaussians ``A exp(-|p - mu|^2 / 2 sigma^2)`` for centres ``mu`` (..., 2) -> (..., H, W) float64."""
    mu = np.asarray(mu, dtype=np.float64)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    dx = x - mu[..., 0, None, None]
    dy = y - mu[..., 1, None, None]
    return amplitude * np.exp(-(dx * dx + dy * dy) / (2.0 * sigma * sigma))


def log_gaussian_logits(mu: NDArray, h: int, w: int, sigma: float) -> NDArray:
    """Integral-style logits ``-|p - mu|^2 / (2 sigma^2)`` (..., H, W) float64."""
    mu = np.asarray(mu, dtype=np.float64)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    dx = x - mu[..., 0, None, None]
    dy = y - mu[..., 1, None, None]
    return -(dx * dx + dy * dy) / (2.0 * sigma * sigma)
