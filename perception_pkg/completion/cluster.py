"""Boxes from the scan alone, for when no detector boxes are configured: ground plane, clusters, boxes.

1. Points within ``max_range`` (xy) of the sensor.
2. Ground: RANSAC for a near-horizontal plane (normal within 25 deg of +z) on a seeded subsample of at
   most 4,000 points (numpy: 100 hypotheses x 4,000 distances), refined by least squares on its
   inliers; points closer than ``ground_distance`` to it (or below it) are ground.
3. Clusters: DBSCAN (open3d ``cluster_dbscan``) on the rest, voxel-thinned to ``eps / 3`` first so
   its cost does not grow with the point density; every point takes its voxel's label.
4. A box per cluster: the minimum-area rectangle of its xy points (OpenCV ``minAreaRect``), the long
   side as the length and heading (yaw mod pi: a cluster has no front), from the ground plane under the
   centre to the cluster's top. Clusters whose box is not car-sized (``length``, ``width``,
   ``height`` ranges) are dropped.

Heading is only known modulo pi and the box is fitted to the visible points, so these boxes are looser
than a detector's; the completion is correspondingly rougher.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from perception_pkg.completion.frame import Boxes


@dataclass(frozen=True)
class ClusterParams:
    ground_distance: float = 0.2
    eps: float = 0.6
    min_points: int = 15
    max_range: float = 40.0
    length: tuple[float, float] = (2.5, 6.5)
    width: tuple[float, float] = (1.2, 2.6)
    height: tuple[float, float] = (0.8, 2.4)
    label: str = "car"


def fit_ground(
    xyz: NDArray, distance: float, rng: np.random.Generator, iters: int = 100
) -> NDArray[np.float64] | None:
    """Plane (a, b, c, d) with a x + b y + c z + d = 0, unit normal pointing up; None when none fits."""
    if len(xyz) < 3:
        return None
    sub = xyz[rng.choice(len(xyz), min(len(xyz), 4000), replace=False)].astype(np.float64)
    best, best_n = None, 0
    tri = rng.integers(0, len(sub), (iters, 3))
    for i, j, k in tri:
        n = np.cross(sub[j] - sub[i], sub[k] - sub[i])
        norm = np.linalg.norm(n)
        if norm < 1e-9:
            continue
        n /= norm
        if n[2] < 0:
            n = -n
        if n[2] < np.cos(np.radians(25)):
            continue
        d = -n @ sub[i]
        count = int((np.abs(sub @ n + d) < distance).sum())
        if count > best_n:
            best, best_n = np.append(n, d), count
    if best is None:
        return None
    inl = sub[np.abs(sub @ best[:3] + best[3]) < distance]
    if len(inl) >= 3:  # least squares z = a x + b y + c on the inliers
        a, b, c = np.linalg.lstsq(np.c_[inl[:, :2], np.ones(len(inl))], inl[:, 2], rcond=None)[0]
        n = np.array([-a, -b, 1.0])
        s = np.linalg.norm(n)
        best = np.append(n / s, -c / s)
    return best


def _dbscan(points: NDArray, eps: float, min_points: int) -> NDArray[np.int64]:
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    return np.asarray(
        pcd.cluster_dbscan(eps=eps, min_points=min_points, print_progress=False), dtype=np.int64
    )


def cluster_boxes(xyz: NDArray, p: ClusterParams, seed: int = 0) -> tuple[Boxes, dict[str, int]]:
    """Car-sized boxes found in the scan ``xyz`` (N, 3), and counts (clusters, kept)."""
    import cv2

    xyz = np.asarray(xyz, dtype=np.float64)
    near = xyz[np.einsum("ij,ij->i", xyz[:, :2], xyz[:, :2]) <= p.max_range**2]
    plane = fit_ground(near, p.ground_distance, np.random.default_rng(seed))
    if plane is None:
        return Boxes.empty(), {"clusters": 0, "cluster_boxes": 0}
    height = near @ plane[:3] + plane[3]
    obj = near[height > p.ground_distance]
    if len(obj) < p.min_points:
        return Boxes.empty(), {"clusters": 0, "cluster_boxes": 0}
    # voxel-thin, cluster the voxels, give every point its voxel's label
    voxel = p.eps / 3
    keys = np.floor(obj / voxel).astype(np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    labels = _dbscan(obj[first], p.eps, max(2, p.min_points // 3))[inverse.reshape(-1)]
    centres, sizes, yaws = [], [], []
    clusters = int(labels.max()) + 1 if len(labels) else 0
    for k in range(clusters):
        pts = obj[labels == k]
        if len(pts) < p.min_points:
            continue
        (cx, cy), (a, b), angle = cv2.minAreaRect(pts[:, :2].astype(np.float32))
        yaw = np.radians(angle) if a >= b else np.radians(angle + 90.0)
        length, width = max(a, b), min(a, b)
        ground_z = -(plane[0] * cx + plane[1] * cy + plane[3]) / plane[2]
        top = float(pts[:, 2].max())
        h = top - ground_z
        if not (
            p.length[0] <= length <= p.length[1]
            and p.width[0] <= width <= p.width[1]
            and p.height[0] <= h <= p.height[1]
        ):
            continue
        yaw = (yaw + np.pi / 2) % np.pi - np.pi / 2
        centres.append([cx, cy, ground_z + h / 2])
        sizes.append([length, width, h])
        yaws.append(yaw)
    n = len(centres)
    boxes = Boxes.from_yaw(
        np.reshape(centres, (n, 3)),
        np.reshape(sizes, (n, 3)),
        np.asarray(yaws),
        [p.label] * n,
        [str(i) for i in range(n)],
    )
    return boxes, {"clusters": clusters, "cluster_boxes": n}
