"""Resampling an object's points to the network's fixed input size (SoftPoolNet: 1,024).

SoftPoolNet's recipe (softpoolnet.txt §5): permute and resample 1,024 points; a scan with fewer
points duplicates samples to fill up. Here: more than ``n`` points -> ``n`` drawn without replacement;
fewer -> every point once plus ``n - len`` duplicates drawn with replacement. Seeded, so the same input
gives the same tensor (the node passes a fixed seed per call).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def resample(points: NDArray, n: int, rng: np.random.Generator) -> NDArray:
    """(n, D) rows of ``points`` (P, D), P >= 1 (see module docstring)."""
    points = np.asarray(points)
    p = len(points)
    if p == 0:
        raise ValueError("cannot resample an empty point set")
    if p >= n:
        idx = rng.choice(p, n, replace=False)
    else:
        idx = np.concatenate([np.arange(p), rng.integers(0, p, n - p)])
    return points[idx]


def subsample(points: NDArray, n: int, rng: np.random.Generator) -> NDArray:
    """At most ``n`` rows, drawn without replacement (fewer are returned as they are)."""
    points = np.asarray(points)
    if len(points) <= n:
        return points
    return points[np.sort(rng.choice(len(points), n, replace=False))]
