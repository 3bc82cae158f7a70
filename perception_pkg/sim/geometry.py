"""Convex primitives (boxes, cylinders, capsules) as triangle meshes, plus rigid-transform helpers.

Every simulated object is a union of convex parts. Each part knows both its triangle mesh (what the
ray caster sees, so it defines the rendered and scanned geometry exactly) and its analytic shape
(used only to drop surface samples that lie inside another part of the same object).

Meshes are generated in numpy rather than with open3d's ``create_*`` helpers so that winding, vertex
order and resolution are under our control and identical on every platform (byte-identical output
per seed). All triangles wind counter-clockwise seen from outside (normals point out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np

# Angular resolution of round parts: 12 segments keep the polygonisation error (sagitta) at 3.4% of
# the radius while a pedestrian stays around 2.4k triangles (the BVH build is per frame for movers).
ROUND_SEGMENTS = 12
CAP_RINGS = 3  # rings per hemisphere of a capsule


def rot_z(yaw: float) -> np.ndarray:
    """Rotation about +z by ``yaw`` radians (counter-clockwise seen from above)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def make_transform(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """4x4 homogeneous transform from a 3x3 rotation and a translation."""
    t = np.eye(4)
    t[:3, :3] = rotation
    t[:3, 3] = translation
    return t


def transform_points(t: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to (N, 3) points."""
    return pts @ t[:3, :3].T + t[:3, 3]


def invert_transform(t: np.ndarray) -> np.ndarray:
    r = t[:3, :3]
    return make_transform(r.T, -r.T @ t[:3, 3])


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # np.cross has ~40 us of argument handling; this runs thousands of times per frame
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _axis_frame(axis: np.ndarray) -> np.ndarray:
    """3x3 matrix whose columns (u, v, a) are an orthonormal frame with a = axis (unit)."""
    a = axis / np.sqrt(axis @ axis)
    # pick the helper least aligned with the axis so the cross product is well conditioned
    helper = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = _cross(helper, a)
    u /= np.sqrt(u @ u)
    v = _cross(a, u)
    return np.stack([u, v, a], axis=1)


def _lathe(profile: np.ndarray, segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Closed surface of revolution about +z.

    ``profile`` is (K, 2) of (radius, z) from the bottom pole (radius 0) to the top pole (radius 0).
    Returns vertices (2 + (K-2)*segments, 3) and outward-wound triangles.
    """
    rings = profile[1:-1]
    phi = np.linspace(0.0, 2.0 * np.pi, segments, endpoint=False)
    ring_xyz = np.stack(
        [
            rings[:, :1] * np.cos(phi)[None, :],
            rings[:, :1] * np.sin(phi)[None, :],
            np.broadcast_to(rings[:, 1:2], (len(rings), segments)),
        ],
        axis=-1,
    ).reshape(-1, 3)
    verts = np.concatenate([[[0.0, 0.0, profile[0, 1]]], ring_xyz, [[0.0, 0.0, profile[-1, 1]]]])
    n_rings = len(rings)
    top = 1 + n_rings * segments
    j = np.arange(segments)
    jn = (j + 1) % segments
    tris = [np.stack([np.zeros(segments, int), 1 + jn, 1 + j], axis=1)]  # bottom fan, normal down
    for k in range(n_rings - 1):
        a = 1 + k * segments + j
        b = 1 + k * segments + jn
        c = 1 + (k + 1) * segments + jn
        d = 1 + (k + 1) * segments + j
        tris.append(np.stack([a, b, c], axis=1))
        tris.append(np.stack([a, c, d], axis=1))
    last = 1 + (n_rings - 1) * segments
    tris.append(np.stack([last + j, last + jn, np.full(segments, top)], axis=1))  # top fan
    return verts, np.concatenate(tris).astype(np.int64)


# corner index = 4*ix + 2*iy + iz (i = 0 on the negative side); faces wound outward
_BOX_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float)
_BOX_TRIS = np.array(
    [
        [0, 1, 3], [0, 3, 2],  # -x
        [4, 6, 7], [4, 7, 5],  # +x
        [0, 4, 5], [0, 5, 1],  # -y
        [2, 3, 7], [2, 7, 6],  # +y
        [0, 2, 6], [0, 6, 4],  # -z
        [1, 5, 7], [1, 7, 3],  # +z
    ],
    dtype=np.int64,
)  # fmt: skip


def _frozen(*arrays: np.ndarray) -> tuple:
    """Cached templates are shared: make accidental in-place edits fail loudly."""
    for a in arrays:
        a.flags.writeable = False
    return arrays


@cache
def _unit_cylinder() -> tuple[np.ndarray, np.ndarray]:
    """Radius 1, height 1 along +z from the origin."""
    return _frozen(*_lathe(np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), ROUND_SEGMENTS))


@cache
def _unit_capsule(sphere: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Radius 1, zero length; ``upper`` marks the vertices of the upper hemisphere (z > 0 side)."""
    a = np.linspace(-np.pi / 2, 0.0, CAP_RINGS + 1)
    lower = np.stack([np.cos(a), np.sin(a)], axis=1)
    upper = np.stack([np.cos(-a[::-1]), np.sin(-a[::-1])], axis=1)
    # a sphere would otherwise get a zero-height band of degenerate triangles at the equator
    profile = np.concatenate([lower, upper[1:] if sphere else upper])
    verts, tris = _lathe(profile, ROUND_SEGMENTS)
    n_lower = 1 + CAP_RINGS * ROUND_SEGMENTS  # pole + rings up to and including the equator
    is_upper = np.arange(len(verts)) >= n_lower
    return _frozen(verts, tris, is_upper)


@dataclass
class Part:
    """One convex piece of an object, in the object's frame.

    kind: ``box`` (centre, half extents, rotation), ``cylinder`` (p0 -> p1 axis, radius) or ``capsule``
    (segment p0 -> p1, radius; a sphere when p0 == p1).
    """

    kind: str
    rgb: tuple[float, float, float]
    p0: np.ndarray = field(default_factory=lambda: np.zeros(3))
    p1: np.ndarray = field(default_factory=lambda: np.zeros(3))
    radius: float = 0.0
    half: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    reflectivity: float = 0.5

    @staticmethod
    def box(centre, half, rgb, reflectivity: float = 0.5, rotation=None) -> Part:
        return Part(
            "box",
            tuple(rgb),
            p0=np.asarray(centre, float),
            half=np.asarray(half, float),
            rotation=np.eye(3) if rotation is None else np.asarray(rotation, float),
            reflectivity=reflectivity,
        )

    @staticmethod
    def box_from_bounds(lo, hi, rgb, reflectivity: float = 0.5) -> Part:
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        return Part.box((lo + hi) / 2, (hi - lo) / 2, rgb, reflectivity=reflectivity)

    @staticmethod
    def cylinder(p0, p1, radius: float, rgb, reflectivity: float = 0.5) -> Part:
        return Part(
            "cylinder",
            tuple(rgb),
            np.asarray(p0, float),
            np.asarray(p1, float),
            float(radius),
            reflectivity=reflectivity,
        )

    @staticmethod
    def capsule(p0, p1, radius: float, rgb, reflectivity: float = 0.5) -> Part:
        return Part(
            "capsule",
            tuple(rgb),
            np.asarray(p0, float),
            np.asarray(p1, float),
            float(radius),
            reflectivity=reflectivity,
        )

    # -- geometry ---------------------------------------------------------------------------------
    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """Vertices (V, 3) float64 and triangles (T, 3) int64 in the object frame."""
        if self.kind == "box":
            verts = (_BOX_CORNERS * self.half) @ self.rotation.T + self.p0
            return verts, _BOX_TRIS
        axis = self.p1 - self.p0
        length = float(np.sqrt(axis @ axis))
        frame = _axis_frame(axis) if length > 1e-9 else np.eye(3)
        # round parts are affine images of a cached unit template: scale x, y by the radius and
        # stretch z (cylinder: the whole height; capsule: shift the upper hemisphere by the length)
        if self.kind == "cylinder":
            unit, tris = _unit_cylinder()
            local = unit * np.array([self.radius, self.radius, length])
        elif self.kind == "capsule":
            if length < 1e-9:
                unit, tris, _ = _unit_capsule(sphere=True)
                local = unit * self.radius
            else:
                unit, tris, upper = _unit_capsule(sphere=False)
                local = unit * self.radius
                local[upper, 2] += length
        else:
            raise ValueError(f"unknown part kind {self.kind!r}")
        return local @ frame.T + self.p0, tris

    def sagitta(self) -> float:
        """Largest gap between the analytic surface and its polygon mesh (0 for boxes)."""
        if self.kind == "box":
            return 0.0
        half_az = np.pi / ROUND_SEGMENTS
        if self.kind == "cylinder":
            return self.radius * (1.0 - np.cos(half_az))
        # capsule caps are faceted in latitude too: bound by the facet's angular circumradius
        half_lat = np.pi / (4 * CAP_RINGS)
        return self.radius * (1.0 - np.cos(np.hypot(half_az, half_lat)))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounds (lo, hi) of the analytic shape (conservative for cylinders)."""
        if self.kind == "box":
            ext = np.abs(self.rotation) @ self.half
            return self.p0 - ext, self.p0 + ext
        lo, hi = np.minimum(self.p0, self.p1), np.maximum(self.p0, self.p1)
        return lo - self.radius, hi + self.radius

    def contains(self, pts: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Boolean (N,) mask of points strictly inside the analytic shape by more than ``margin``."""
        if self.kind == "box":
            local = (pts - self.p0) @ self.rotation
            return np.all(np.abs(local) < self.half - margin, axis=1)
        axis = self.p1 - self.p0
        length2 = float(axis @ axis)
        rel = pts - self.p0
        t = rel @ axis / length2 if length2 > 0 else np.zeros(len(pts))
        if self.kind == "cylinder":
            length = np.sqrt(length2)
            radial = np.linalg.norm(rel - t[:, None] * axis, axis=1)
            return (radial < self.radius - margin) & (t * length > margin) & (t * length < length - margin)
        closest = self.p0 + np.clip(t, 0.0, 1.0)[:, None] * axis
        return np.linalg.norm(pts - closest, axis=1) < self.radius - margin


def _capsule_batch(parts: list[Part]) -> tuple[np.ndarray, np.ndarray]:
    """Meshes of several (non-degenerate) capsules at once: (P, V, 3) vertices, (T, 3) triangles.

    Same vertices as ``Part.mesh`` one by one; a person has ~16 capsules and is rebuilt every
    frame while walking, so the per-part Python overhead is worth removing.
    """
    unit, tris, upper = _unit_capsule(sphere=False)
    p0 = np.array([p.p0 for p in parts])
    axis = np.array([p.p1 for p in parts]) - p0
    length = np.sqrt(np.einsum("ij,ij->i", axis, axis))
    a = axis / length[:, None]
    helper = np.where((np.abs(a[:, 0]) < 0.9)[:, None], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    u = np.cross(helper, a)
    u /= np.sqrt(np.einsum("ij,ij->i", u, u))[:, None]
    v = np.cross(a, u)
    radius = np.array([p.radius for p in parts])
    local = unit[None] * radius[:, None, None]
    local[:, upper, 2] += length[:, None]
    verts = (
        local[..., :1] * u[:, None]
        + local[..., 1:2] * v[:, None]
        + local[..., 2:3] * a[:, None]
        + p0[:, None]
    )
    return verts, tris


def merge_parts(parts: list[Part]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate part meshes: vertices (V, 3), triangles (T, 3), part index per triangle (T,)."""
    verts, tris, owner = [], [], []
    offset = 0
    batch = [
        i for i, p in enumerate(parts)
        if p.kind == "capsule" and float(np.sum((p.p1 - p.p0) ** 2)) > 1e-18
    ]  # fmt: skip
    if len(batch) > 1:
        bv, bt = _capsule_batch([parts[i] for i in batch])
        n_v = bv.shape[1]
        verts.append(bv.reshape(-1, 3))
        tris.append((bt[None] + (np.arange(len(batch)) * n_v)[:, None, None]).reshape(-1, 3))
        owner.append(np.repeat(np.array(batch, np.int32), len(bt)))
        offset = len(batch) * n_v
        batched = set(batch)
    else:
        batched = set()
    for i, part in enumerate(parts):
        if i in batched:
            continue
        v, t = part.mesh()
        verts.append(v)
        tris.append(t + offset)
        owner.append(np.full(len(t), i, dtype=np.int32))
        offset += len(v)
    return np.concatenate(verts), np.concatenate(tris), np.concatenate(owner)
