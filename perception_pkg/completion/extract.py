"""The points of each box in a scan: the objects the network completes.

A point belongs to a box when, in that box's frame, it lies inside the box grown by ``grow`` metres on
every side but the bottom, and at least ``ground_margin`` metres above the box's bottom face. The
bottom face of a car box touches the road, so without that margin the road returns around and under
the car would be cut out with it (training uses this same function on the simulator's full scans, so
the network sees at run time exactly what it was trained on). Points may belong to several boxes.

Only finite points are considered (a cloud's NaN returns are dropped by the caller and counted).
The cost is one square pre-filter in xy over the scan per box (two comparisons per point on
contiguous float32 columns, ~0.15 ms per box on 125k points here), then the exact test on the
few candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from perception_pkg.completion.frame import Boxes


@dataclass
class Extraction:
    """``indices[i]``: rows of the scan inside box ``i``; ``counts`` their numbers."""

    indices: list[NDArray[np.intp]]

    @property
    def counts(self) -> NDArray[np.int64]:
        return np.array([len(i) for i in self.indices], dtype=np.int64)


def points_in_boxes(
    xyz: NDArray, boxes: Boxes, *, grow: float = 0.1, ground_margin: float = 0.15
) -> Extraction:
    """Indices of the rows of ``xyz`` (N, 3) inside each box (module docstring)."""
    xyz = np.asarray(xyz)
    out: list[NDArray[np.intp]] = []
    if len(boxes) == 0:
        return Extraction(out)
    half = boxes.sizes / 2
    # the grown box lies inside a sphere of this radius, so inside the square of that half-side in xy
    # (whatever the box's tilt); two comparisons per point on contiguous float32 columns
    radius = np.linalg.norm(half + grow, axis=1)
    x = np.ascontiguousarray(xyz[:, 0], dtype=np.float32)
    y = np.ascontiguousarray(xyz[:, 1], dtype=np.float32)
    for i in range(len(boxes)):
        c, rot, h = boxes.centres[i], boxes.rotations[i], half[i]
        r = np.float32(radius[i])
        cand = np.flatnonzero((np.abs(x - np.float32(c[0])) <= r) & (np.abs(y - np.float32(c[1])) <= r))
        if len(cand) == 0:
            out.append(cand)
            continue
        local = (xyz[cand].astype(np.float64) - c) @ rot
        inside = (
            (np.abs(local[:, 0]) <= h[0] + grow)
            & (np.abs(local[:, 1]) <= h[1] + grow)
            & (local[:, 2] <= h[2] + grow)
            & (local[:, 2] >= -h[2] + ground_margin)
        )
        out.append(cand[inside])
    return Extraction(out)
