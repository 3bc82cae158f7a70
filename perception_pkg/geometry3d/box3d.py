"""3D boxes in the KITTI camera frame: keypoints, projection, rotated BEV IoU and 3D IoU.

Convention (KITTI ``label_2`` / rectified camera 0 frame):

- camera axes: x right, y down, z forward (metres);
- ``location`` (x, y, z) is the **bottom-face centre** of the box, so the box spans ``y - h .. y``;
- ``dimensions`` are (h, w, l): height along y, width along the object's lateral axis, length along its
  heading;
- ``rotation_y`` is the yaw about the camera y axis; at 0 the object's length points along +x.

A box array is ``(..., 7)`` laid out ``[x, y, z, h, w, l, rotation_y]`` (:data:`BOX_FIELDS`).

Keypoint order (the 9 RTM3D vertices, :func:`box3d_keypoints`), in object coordinates before yaw
(x along length, y down, z along width)::

    index:  0        1        2        3        4        5        6        7        8
    x:     +l/2     +l/2     -l/2     -l/2     +l/2     +l/2     -l/2     -l/2      0
    y:      0        0        0        0       -h       -h       -h       -h      -h/2
    z:     +w/2     -w/2     -w/2     +w/2     +w/2     -w/2     -w/2     +w/2      0

i.e. 0-3 the bottom face, 4-7 the top face (4 above 0, ...), 8 the 3D centre. This is the order of the
KITTI devkit's ``compute_box_3d`` (and so of RTM3D/KM3D), so labels from those tools line up.

IoU: rotated rectangles are intersected with a vectorised Sutherland-Hodgman clip. shapely would do the
polygon part but is not a dependency (not installed, and a GEOS wheel for one polygon routine is a heavy
addition for a robot image); the clip of two convex quadrilaterals is ~60 lines of numpy and runs on all
pairs at once, which matters for AP over thousands of boxes.
"""

from __future__ import annotations

import numpy as np

BOX_FIELDS = ("x", "y", "z", "h", "w", "l", "rotation_y")

# Object-frame unit corners (multiplied by l, h, w below); see the module docstring table.
_UNIT_X = np.array([0.5, 0.5, -0.5, -0.5, 0.5, 0.5, -0.5, -0.5, 0.0])
_UNIT_Y = np.array([0.0, 0.0, 0.0, 0.0, -1.0, -1.0, -1.0, -1.0, -0.5])
_UNIT_Z = np.array([0.5, -0.5, -0.5, 0.5, 0.5, -0.5, -0.5, 0.5, 0.0])


def rotation_y_matrix(ry: np.ndarray | float) -> np.ndarray:
    """Rotation about camera y, ``(..., 3, 3)``: x' = c x + s z, z' = -s x + c z (KITTI devkit)."""
    ry = np.asarray(ry, dtype=np.float64)
    c, s = np.cos(ry), np.sin(ry)
    zero, one = np.zeros_like(c), np.ones_like(c)
    return np.stack(
        [np.stack([c, zero, s], -1), np.stack([zero, one, zero], -1), np.stack([-s, zero, c], -1)], -2
    )


def box3d_keypoints(
    location: np.ndarray, dimensions: np.ndarray, rotation_y: np.ndarray | float
) -> np.ndarray:
    """The 9 RTM3D keypoints (8 corners + 3D centre) in camera coordinates, ``(..., 9, 3)``.

    ``location`` (..., 3) bottom centre, ``dimensions`` (..., 3) as (h, w, l), ``rotation_y`` (...).
    """
    loc = np.asarray(location, dtype=np.float64)
    dims = np.asarray(dimensions, dtype=np.float64)
    h, w, length = dims[..., 0:1], dims[..., 1:2], dims[..., 2:3]
    local = np.stack([_UNIT_X * length, _UNIT_Y * h, _UNIT_Z * w], axis=-1)  # (..., 9, 3)
    rot = rotation_y_matrix(rotation_y)  # (..., 3, 3)
    return np.einsum("...ij,...kj->...ki", rot, local) + loc[..., None, :]


def box3d_corners(location: np.ndarray, dimensions: np.ndarray, rotation_y: np.ndarray | float) -> np.ndarray:
    """The 8 corners, ``(..., 8, 3)``; the first 8 of :func:`box3d_keypoints`."""
    return box3d_keypoints(location, dimensions, rotation_y)[..., :8, :]


def project_points(P: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Project camera-frame points ``(..., 3)`` with a 3x4 matrix (KITTI P2, translation column included).

    Returns pixel coordinates ``(..., 2)``. Points at or behind the projection centre give inf/negative
    depth divisions; callers decide what to do with those (we do not clip silently).
    """
    P = np.asarray(P, dtype=np.float64).reshape(3, 4)
    pts = np.asarray(points, dtype=np.float64)
    hom = pts @ P[:, :3].T + P[:, 3]
    return hom[..., :2] / hom[..., 2:3]


def boxes_to_keypoints(boxes: np.ndarray) -> np.ndarray:
    """``(N, 7)`` boxes -> ``(N, 9, 3)`` keypoints."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    return box3d_keypoints(b[:, 0:3], b[:, 3:6], b[:, 6])


def bev_corners(boxes: np.ndarray) -> np.ndarray:
    """Bird's-eye-view footprint in the (x, z) plane, ``(N, 4, 2)``, counter-clockwise in (x, z)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    corners = box3d_keypoints(b[:, 0:3], b[:, 3:6], b[:, 6])[:, :4][..., [0, 2]]
    # Orientation in (x, z) depends on nothing but the corner table, but a negative size from a bad
    # regression would flip it; make every polygon counter-clockwise because the clip keeps the left side.
    area = _signed_area(corners, np.full(len(corners), 4))
    corners[area < 0] = corners[area < 0][:, ::-1]
    return corners


def _signed_area(poly: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Shoelace area of padded polygons ``(M, K, 2)`` with ``count`` valid vertices each."""
    m, k = poly.shape[:2]
    rows = np.arange(m)
    area = np.zeros(m)
    safe = np.maximum(count, 1)
    for i in range(k):
        nxt = poly[rows, (i + 1) % safe]
        cur = poly[:, i]
        term = cur[:, 0] * nxt[:, 1] - nxt[:, 0] * cur[:, 1]
        area += np.where(i < count, term, 0.0)
    return 0.5 * area


def _clip_half_plane(
    poly: np.ndarray, count: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One Sutherland-Hodgman step for M polygons at once: keep the part left of the edge a->b."""
    m, k = poly.shape[:2]
    rows = np.arange(m)
    out = np.zeros((m, k + 1, 2))  # a convex polygon cut by a half-plane gains at most one vertex
    out_n = np.zeros(m, dtype=np.int64)
    edge = b - a
    safe = np.maximum(count, 1)
    for i in range(k):
        valid = i < count
        cur = poly[:, i]
        nxt = poly[rows, (i + 1) % safe]
        s_cur = edge[:, 0] * (cur[:, 1] - a[:, 1]) - edge[:, 1] * (cur[:, 0] - a[:, 0])
        s_nxt = edge[:, 0] * (nxt[:, 1] - a[:, 1]) - edge[:, 1] * (nxt[:, 0] - a[:, 0])
        in_cur, in_nxt = s_cur >= 0, s_nxt >= 0
        emit = valid & in_cur
        out[rows[emit], out_n[emit]] = cur[emit]
        out_n += emit
        cross = valid & (in_cur != in_nxt)
        denom = np.where(cross, s_cur - s_nxt, 1.0)
        t = (s_cur / denom)[:, None]
        inter = cur + t * (nxt - cur)
        out[rows[cross], out_n[cross]] = inter[cross]
        out_n += cross
    return out, out_n


def convex_intersection_area(poly_a: np.ndarray, poly_b: np.ndarray) -> np.ndarray:
    """Area of the intersection of convex CCW polygons, pairwise along the first axis.

    ``poly_a`` (M, Ka, 2) is clipped by each edge of ``poly_b`` (M, Kb, 2). Both must be convex and
    counter-clockwise (:func:`bev_corners` guarantees that for boxes).
    """
    poly = np.asarray(poly_a, dtype=np.float64)
    clip = np.asarray(poly_b, dtype=np.float64)
    count = np.full(len(poly), poly.shape[1], dtype=np.int64)
    kb = clip.shape[1]
    for j in range(kb):
        poly, count = _clip_half_plane(poly, count, clip[:, j], clip[:, (j + 1) % kb])
    return np.abs(_signed_area(poly, count))


def bev_overlap(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise BEV intersection areas, ``(N, M)``."""
    ca, cb = bev_corners(boxes_a), bev_corners(boxes_b)
    n, m = len(ca), len(cb)
    if n == 0 or m == 0:
        return np.zeros((n, m))
    pa = np.repeat(ca, m, axis=0)
    pb = np.tile(cb, (n, 1, 1))
    return convex_intersection_area(pa, pb).reshape(n, m)


def bev_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise rotated IoU of the footprints in the (x, z) ground plane, ``(N, M)``."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 7)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 7)
    inter = bev_overlap(a, b)
    area_a = a[:, 4] * a[:, 5]
    area_b = b[:, 4] * b[:, 5]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def box3d_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise 3D IoU, ``(N, M)``: BEV overlap times the overlap of the y extents (y down, bottom = y)."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 7)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 7)
    inter_bev = bev_overlap(a, b)
    bottom = np.minimum(a[:, None, 1], b[None, :, 1])
    top = np.maximum(a[:, None, 1] - a[:, None, 3], b[None, :, 1] - b[None, :, 3])
    inter = inter_bev * np.clip(bottom - top, 0.0, None)
    vol_a = a[:, 3] * a[:, 4] * a[:, 5]
    vol_b = b[:, 3] * b[:, 4] * b[:, 5]
    union = vol_a[:, None] + vol_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
