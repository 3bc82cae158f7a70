"""The PCN object frame: centre on the box, rotate into the box axes, divide by the box length.

PCN protocol (SPECS.md, Point-cloud completion): a point ``p`` in the sensor frame goes to
``q = R^T (p - c) / l`` where ``c`` is the box's geometric centre, ``R`` its rotation (object axes x
forward/length, y left/width, z up/height as columns, in the sensor frame; ``R_z(yaw)`` for a level box,
which is "rotate by -yaw") and ``l`` its length. :meth:`ObjectFrames.to_sensor` is the exact inverse,
``p = l R q + c``. A car then spans x in [-0.5, 0.5]; its width and height keep their proportions.

Arrays are row-major point lists, so ``R^T (p - c)`` is ``(p - c) @ R``. Everything here is batched
over the boxes of one scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


def yaw_rotations(yaw: NDArray) -> NDArray[np.float64]:
    """(N, 3, 3) rotations about +z by ``yaw`` (rad): object x axis at angle yaw in the sensor xy plane."""
    yaw = np.asarray(yaw, dtype=np.float64).reshape(-1)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.zeros((len(yaw), 3, 3))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1.0
    return rot


def rotation_yaws(rotations: NDArray) -> NDArray[np.float64]:
    """Heading about +z of each rotation's object x axis (the yaw of a level box)."""
    r = np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3)
    return np.arctan2(r[:, 1, 0], r[:, 0, 0])


@dataclass
class Boxes:
    """3D boxes in one sensor frame: ``centres`` (N, 3) geometric centres, ``sizes`` (N, 3) as
    (l, w, h) along the object's x, y, z, ``rotations`` (N, 3, 3) object axes in the frame, and per box
    a class name and an id (the detection's id, or a cluster number)."""

    centres: NDArray[np.float64]
    sizes: NDArray[np.float64]
    rotations: NDArray[np.float64]
    labels: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.centres)
        self.centres = np.asarray(self.centres, dtype=np.float64).reshape(n, 3)
        self.sizes = np.asarray(self.sizes, dtype=np.float64).reshape(n, 3)
        self.rotations = np.asarray(self.rotations, dtype=np.float64).reshape(n, 3, 3)
        if not self.labels:
            self.labels = [""] * n
        if not self.ids:
            self.ids = [str(i) for i in range(n)]
        if not (len(self.labels) == len(self.ids) == n):
            raise ValueError(f"{n} boxes but {len(self.labels)} labels and {len(self.ids)} ids")

    def __len__(self) -> int:
        return len(self.centres)

    @classmethod
    def from_yaw(cls, centres, sizes, yaws, labels=(), ids=()) -> Boxes:
        return cls(
            np.asarray(centres, float), np.asarray(sizes, float), yaw_rotations(yaws), list(labels), list(ids)
        )

    @classmethod
    def empty(cls) -> Boxes:
        return cls(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3, 3)))

    def select(self, rows) -> Boxes:
        rows = np.asarray(rows, dtype=np.intp).reshape(-1)
        return Boxes(
            self.centres[rows],
            self.sizes[rows],
            self.rotations[rows],
            [self.labels[i] for i in rows],
            [self.ids[i] for i in rows],
        )

    def transformed(self, t: NDArray) -> Boxes:
        """The same boxes in another frame, ``t`` (4, 4) taking this frame's points to that one."""
        t = np.asarray(t, dtype=np.float64)
        return Boxes(
            self.centres @ t[:3, :3].T + t[:3, 3],
            self.sizes.copy(),
            np.einsum("ij,njk->nik", t[:3, :3], self.rotations),
            list(self.labels),
            list(self.ids),
        )

    def corners(self) -> NDArray[np.float64]:
        """(N, 8, 3) corners; index = 4*ix + 2*iy + iz with i* = 0 on the negative side of the axis."""
        signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
        local = signs[None] * self.sizes[:, None, :] / 2
        return np.einsum("nij,nkj->nki", self.rotations, local) + self.centres[:, None, :]

    def frames(self) -> ObjectFrames:
        return ObjectFrames(self.centres, self.rotations, self.sizes[:, 0])


@dataclass
class ObjectFrames:
    """The PCN normalisation of N boxes: ``centres`` (N, 3), ``rotations`` (N, 3, 3), ``scales`` (N,)
    (the box lengths). ``to_object`` / ``to_sensor`` take (N, P, 3) (or one box's (P, 3) with ``i``)."""

    centres: NDArray[np.float64]
    rotations: NDArray[np.float64]
    scales: NDArray[np.float64]

    def __post_init__(self) -> None:
        self.centres = np.asarray(self.centres, dtype=np.float64).reshape(-1, 3)
        self.rotations = np.asarray(self.rotations, dtype=np.float64).reshape(-1, 3, 3)
        self.scales = np.asarray(self.scales, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(self.scales)) or np.any(self.scales <= 0):
            raise ValueError(f"box lengths must be finite and > 0, got {self.scales}")

    def __len__(self) -> int:
        return len(self.scales)

    def to_object(self, points: NDArray, i: int | None = None) -> NDArray[np.float64]:
        """Sensor-frame points -> object frame: ``points`` (N, P, 3) for all boxes, (P, 3) for box ``i``."""
        if i is not None:
            p = np.asarray(points, dtype=np.float64)
            return (p - self.centres[i]) @ self.rotations[i] / self.scales[i]
        # one batched matmul with the scale folded into the (N, 3, 3) rotations: einsum's generic loop
        # took 7x longer on 10 x 2,048 points (same values to 1e-14)
        p = np.asarray(points, dtype=np.float64) - self.centres[:, None, :]
        return np.matmul(p, self.rotations / self.scales[:, None, None])

    def to_sensor(self, points: NDArray, i: int | None = None) -> NDArray[np.float64]:
        """Exact inverse of :meth:`to_object`."""
        if i is not None:
            q = np.asarray(points, dtype=np.float64)
            return (q * self.scales[i]) @ self.rotations[i].T + self.centres[i]
        out = np.matmul(
            np.asarray(points, dtype=np.float64),
            self.rotations.transpose(0, 2, 1) * self.scales[:, None, None],
        )
        out += self.centres[:, None, :]
        return out
