"""LiDAR pre-filtering: non-finite points, range and box crop, voxel down-sampling.

Works on any structured point array with x, y, z fields, keeping every other field (intensity, ring,
time ...) of the points it keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def voxel_downsample(xyz: np.ndarray, voxel: float) -> np.ndarray:
    """Indices of one point per occupied voxel (the first in input order), sorted ascending.

    Hand-written rather than open3d's voxel_down_sample because it must keep the other fields of the
    chosen points and because open3d (~480 MB) is not a runtime dependency on the robot.
    """
    if voxel <= 0 or xyz.shape[0] == 0:
        return np.arange(xyz.shape[0])
    # float64 so that 1e38 / voxel does not overflow, clipped so the cast to int64 is defined: points
    # beyond 2**62 voxels (absurd coordinates, e.g. a fuzzed cloud) share the edge voxels
    keys = np.clip(np.floor(np.asarray(xyz, dtype=np.float64) / voxel), -(2.0**62), 2.0**62).astype(np.int64)
    _, first = np.unique(keys, axis=0, return_index=True)
    return np.sort(first)


@dataclass(frozen=True)
class CloudFilter:
    """Which points to keep. Distances in metres, in the cloud's own frame."""

    range_min: float = 0.0
    range_max: float = float("inf")
    box_min: tuple[float, float, float] = (-np.inf, -np.inf, -np.inf)
    box_max: tuple[float, float, float] = (np.inf, np.inf, np.inf)
    voxel_size: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.range_min < self.range_max:
            raise ValueError(f"need 0 <= range_min < range_max, got {self.range_min}, {self.range_max}")
        if any(lo >= hi for lo, hi in zip(self.box_min, self.box_max, strict=True)):
            raise ValueError(f"box_min must be below box_max per axis: {self.box_min} vs {self.box_max}")
        if self.voxel_size < 0:
            raise ValueError(f"voxel_size must be >= 0, got {self.voxel_size}")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> CloudFilter:
        """From the cloud_filter node's parameters (config/perception.yaml), ignoring other keys."""
        inf = float("inf")
        return cls(
            range_min=float(params.get("range_min", 0.0)),
            range_max=float(params.get("range_max", inf)),
            box_min=tuple(float(v) for v in params.get("box_min", (-inf,) * 3)),
            box_max=tuple(float(v) for v in params.get("box_max", (inf,) * 3)),
            voxel_size=float(params.get("voxel_size", 0.0)),
        )

    def keep_indices(self, xyz: np.ndarray) -> np.ndarray:
        """Indices of the points of an (N, 3) array that pass every test, in input order."""
        xyz = np.asarray(xyz, dtype=np.float64)
        ok = np.isfinite(xyz).all(axis=1)
        ok &= (xyz >= np.asarray(self.box_min)).all(axis=1) & (xyz <= np.asarray(self.box_max)).all(axis=1)
        if self.range_min > 0 or np.isfinite(self.range_max):
            r2 = np.einsum("ij,ij->i", xyz, xyz)
            ok &= (r2 >= self.range_min**2) & (r2 <= self.range_max**2)
        idx = np.flatnonzero(ok)
        if self.voxel_size > 0:
            idx = idx[voxel_downsample(xyz[idx], self.voxel_size)]
        return idx

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Filter a structured array with x, y, z fields; returns the kept rows (all fields)."""
        names = points.dtype.names or ()
        missing = [f for f in ("x", "y", "z") if f not in names]
        if missing:
            raise ValueError(f"point array lacks fields {missing}; has {list(names)}")
        flat = points.reshape(-1)
        xyz = np.stack([flat["x"], flat["y"], flat["z"]], axis=1)
        return flat[self.keep_indices(xyz)]
