"""Ground truth: what each frame's labels mean, exactly.

2D boxes (pixels; pixel (c, r) covers [c-0.5, c+0.5] x [r-0.5, r+0.5], see sensors.py)
    ``box2d``: the *modal* box, the extent of the object's pixels in the rendered instance mask:
    [c_min - 0.5, r_min - 0.5, c_max + 0.5, r_max + 0.5] as (x0, y0, x1, y1). This is what COCO-style
    annotations mean and what the json/bag carry.
    ``box2d_amodal``: min/max of the projections of all mesh vertices in front of the camera
    (Z > 0.1 m), occlusion ignored, not clipped to the image. ``truncated`` is set when some vertex
    is behind that plane or the amodal box leaves the image.

3D boxes
    The tight box around the object's mesh, aligned with the object frame (x forward, y left, z up;
    for cars x is the length). ``Box3D`` holds it in one sensor frame: ``centre`` (geometric centre),
    ``size`` = (l, w, h) along the object's x, y, z, and ``rotation`` (3x3, object axes -> that frame).
    KITTI form (``Box3D.kitti()`` of the camera box): camera x right, y down, z forward;
    ``location`` = centre of the box's *bottom* face; ``dimensions`` = (h, w, l);
    ``rotation_y`` = rotation about camera +y in [-pi, pi), 0 when the object's heading points along
    camera +x; the heading in camera coordinates is (cos ry, 0, -sin ry). (KITTI's label order is
    h, w, l, x, y, z, ry.) For a LiDAR-frame box, yaw is about LiDAR +z from +x, and
    ry = -yaw - pi/2 (wrapped) when the camera is level (the default rig).

Keypoints (persons): COCO-17 order, (x, y, v) with x, y the pinhole projection of the 3D joint
    (pixel-centre convention) and v from the depth buffer at the pixel containing (x, y):
    v = 0 if the point is behind the camera or outside the image; v = 2 if that pixel belongs to
    this person in the instance mask and its depth is at least Z_kp - r_k (r_k = the radius of the
    body part around that joint + 2 cm, see ``people.keypoint_radii``), i.e. the first surface seen
    there is this person's own skin around that joint; otherwise v = 1 (occluded, in the image).

LiDAR: ``lidar_index`` selects this object's returns from the frame's point cloud (LiDAR frame).
Complete shapes: ``surface_samples`` draws points uniformly (open3d, seeded) on the object's outer
    surface: samples hidden inside another part of the same object are removed, up to the mesh's
    polygonisation error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception_pkg.sim.geometry import Part, merge_parts
from perception_pkg.sim.scene import SimObject


@dataclass
class Box3D:
    centre: np.ndarray  # (3,) geometric centre
    size: np.ndarray  # (3,) l, w, h
    rotation: np.ndarray  # (3, 3) object axes in this frame

    def corners(self) -> np.ndarray:
        """(8, 3) corners; index = 4*ix + 2*iy + iz with i* = 0 for the negative side of the axis."""
        signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
        return (signs * self.size / 2) @ self.rotation.T + self.centre

    def yaw_about_z(self) -> float:
        """Heading angle about +z (for LiDAR/map-frame boxes)."""
        return float(np.arctan2(self.rotation[1, 0], self.rotation[0, 0]))

    def kitti(self) -> dict[str, object]:
        """KITTI label fields for a box in the camera optical frame (see module docstring)."""
        heading = self.rotation[:, 0]
        ry = float(np.arctan2(-heading[2], heading[0]))
        bottom = self.centre + self.rotation[:, 2] * (-self.size[2] / 2)
        return {
            "dimensions": [float(self.size[2]), float(self.size[1]), float(self.size[0])],
            "location": [float(v) for v in bottom],
            "rotation_y": _wrap(ry),
        }

    def transformed(self, t: np.ndarray) -> Box3D:
        return Box3D(t[:3, :3] @ self.centre + t[:3, 3], self.size.copy(), t[:3, :3] @ self.rotation)


def _wrap(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)


@dataclass
class ObjectGT:
    oid: int
    cls: str
    visible_pixels: int
    box2d: np.ndarray | None  # (4,) x0, y0, x1, y1 modal
    box2d_amodal: np.ndarray | None
    truncated: bool
    box3d_camera: Box3D
    box3d_lidar: Box3D
    T_lidar_object: np.ndarray  # (4, 4) object frame -> LiDAR frame
    lidar_index: np.ndarray  # indices into Frame.points
    keypoints: np.ndarray | None = None  # (17, 3) x, y, v
    keypoints_camera: np.ndarray | None = None  # (17, 3) camera-frame joints
    keypoint_radii: np.ndarray | None = None  # (17,) r_k used for v

    @property
    def num_lidar_points(self) -> int:
        return len(self.lidar_index)


def object_box(obj: SimObject, t: float) -> Box3D:
    """Tight object-frame box of the mesh at time t (in the object frame)."""
    verts, _, _ = obj.mesh_at(t)
    lo, hi = verts.min(axis=0), verts.max(axis=0)
    return Box3D((lo + hi) / 2, hi - lo, np.eye(3))


def _sample_seed(*key: int) -> int:
    # open3d's sampler takes one 32-bit seed; derive it from the whole key so seeds never collide
    return int(np.random.SeedSequence([abs(int(k)) for k in key]).generate_state(1)[0] & 0x7FFFFFFF)


def buried(parts: list[Part], pts: np.ndarray) -> np.ndarray:
    """Points lying inside some part deeper than that part's polygonisation error.

    A sample on part i's facets is inside i's analytic shape by at most i's sagitta, so the margin
    keeps it; deeper means it is buried in another part. Each part only tests the points in its
    bounding box, which keeps this linear in practice.
    """
    inside = np.zeros(len(pts), bool)
    # sort along the object's longest axis once; each part then takes its slab by binary search
    axis = int(np.argmax(np.ptp(pts, axis=0))) if len(pts) else 0
    order = np.argsort(pts[:, axis], kind="stable")
    keys = pts[order, axis]
    others = [a for a in range(3) if a != axis]
    for part in parts:
        lo, hi = part.bounds()
        cand = order[np.searchsorted(keys, lo[axis], "right") : np.searchsorted(keys, hi[axis], "left")]
        sub = pts[cand]
        a, b = others
        keep = (sub[:, a] > lo[a]) & (sub[:, a] < hi[a]) & (sub[:, b] > lo[b]) & (sub[:, b] < hi[b])
        cand = cand[keep]
        if len(cand):
            inside[cand] |= part.contains(pts[cand], margin=part.sagitta() + 1e-3)
    return inside


def surface_samples(obj: SimObject, t: float, n: int, seed: int) -> np.ndarray:
    """(n, 3) float32 points uniformly on the object's outer surface, object frame, seeded.

    open3d samples the whole mesh uniformly by area; samples buried inside another part are
    dropped (what is left is uniform on the outer surface), in batches sized from the kept share.
    """
    import open3d as o3d

    parts = obj.parts_at(t)
    verts, tris, _ = merge_parts(parts)
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(verts), o3d.utility.Vector3iVector(tris))
    kept: list[np.ndarray] = []
    total, drawn, batch = 0, 0, int(1.3 * n) + 64
    for attempt in range(8):
        key = (seed, obj.oid, round(t * 1000), n, attempt)
        o3d.utility.random.seed(_sample_seed(*key))
        pts = np.asarray(mesh.sample_points_uniformly(batch).points)
        pts = pts[~buried(parts, pts)]
        kept.append(pts)
        total += len(pts)
        drawn += batch
        if total >= n:
            allpts = np.concatenate(kept)
            order = np.random.default_rng(_sample_seed(*key, 1)).permutation(total)[:n]
            return allpts[np.sort(order)].astype(np.float32)
        rate = max(total / drawn, 0.05)
        batch = int((n - total) / rate * 1.2) + 64
    raise RuntimeError(f"could not sample {n} outer-surface points for object {obj.oid}")
