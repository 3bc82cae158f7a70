"""3D box geometry: keypoint order, projection, BEV/3D IoU (hand-computed cases and properties)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_pkg.geometry3d import (
    bev_corners,
    bev_iou,
    box3d_iou,
    box3d_keypoints,
    convex_intersection_area,
    project_points,
)

P2 = np.array(
    [
        [721.5377, 0.0, 609.5593, 44.85728],
        [0.0, 721.5377, 172.854, 0.2163791],
        [0.0, 0.0, 1.0, 0.002745884],
    ]
)


def box(x=0.0, y=1.0, z=10.0, h=1.5, w=2.0, length=4.0, ry=0.0) -> np.ndarray:
    return np.array([[x, y, z, h, w, length, ry]])


def test_keypoint_order_and_centre() -> None:
    kp = box3d_keypoints(np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 4.0]), 0.0)
    assert kp.shape == (9, 3)
    # bottom face at y = 2 (location is the bottom centre, y down), top face at y - h
    np.testing.assert_allclose(kp[:4, 1], 2.0)
    np.testing.assert_allclose(kp[4:8, 1], 0.5)
    np.testing.assert_allclose(kp[8], [1.0, 1.25, 3.0])
    np.testing.assert_allclose(kp[:8].mean(axis=0), kp[8])
    # corner 0 is (+l/2, 0, +w/2), corner 4 directly above it
    np.testing.assert_allclose(kp[0], [3.0, 2.0, 4.0])
    np.testing.assert_allclose(kp[4] - kp[0], [0.0, -1.5, 0.0])
    # yaw pi/2: the length axis turns from +x to -z (x' = c x + s z, z' = -s x + c z)
    kp90 = box3d_keypoints(np.zeros(3), np.array([1.0, 2.0, 4.0]), np.pi / 2)
    np.testing.assert_allclose(kp90[0], [1.0, 0.0, -2.0], atol=1e-12)


def test_projection_matches_kitti_matrix_and_is_consistent() -> None:
    pts = box3d_keypoints(np.array([2.0, 1.6, 25.0]), np.array([1.53, 1.62, 3.89]), 0.3)
    uv = project_points(P2, pts)
    hom = np.c_[pts, np.ones(9)] @ P2.T
    np.testing.assert_allclose(uv, hom[:, :2] / hom[:, 2:], rtol=1e-12)
    # the centre keypoint projects inside the hull of the projected corners; top is above bottom (v smaller)
    assert uv[:8, 0].min() < uv[8, 0] < uv[:8, 0].max()
    assert np.all(uv[4:8, 1] < uv[0:4, 1])
    # batched call gives the same as one at a time
    boxes = np.stack([pts, pts + np.array([1.0, 0.0, 5.0])])
    np.testing.assert_allclose(project_points(P2, boxes)[1], project_points(P2, boxes[1]))


def test_kitti_label_projects_onto_its_2d_box(assets) -> None:
    calib = assets / "kitti" / "training" / "calib" / "000000.txt"
    label = assets / "kitti" / "training" / "label_2" / "000000.txt"
    if not (calib.is_file() and label.is_file()):
        pytest.skip(f"KITTI sample frame 000000 not in {assets}")
    p2 = next(line for line in calib.read_text().splitlines() if line.startswith("P2:"))
    P = np.array(p2.split()[1:], dtype=float).reshape(3, 4)
    fields = label.read_text().split()
    bbox = np.array(fields[4:8], dtype=float)
    dims, loc, ry = np.array(fields[8:11], float), np.array(fields[11:14], float), float(fields[14])
    uv = project_points(P, box3d_keypoints(loc, dims, ry)[:8])
    proj_box = np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])
    # KITTI's 2D boxes are hand-drawn around the visible object; the 3D box's hull agrees to a few px
    # (measured on this pedestrian: 9.6 px at the right edge, under 2 px elsewhere).
    assert np.abs(proj_box - bbox).max() < 12.0


def test_identical_and_disjoint() -> None:
    a = box(ry=0.7)
    assert bev_iou(a, a)[0, 0] == pytest.approx(1.0, abs=1e-12)
    assert box3d_iou(a, a)[0, 0] == pytest.approx(1.0, abs=1e-12)
    far = box(x=50.0, ry=0.7)
    assert bev_iou(a, far)[0, 0] == 0.0
    assert box3d_iou(a, far)[0, 0] == 0.0
    # same footprint, stacked vertically without overlap: BEV 1, 3D 0
    above = box(y=1.0 - 1.5, ry=0.7)
    assert bev_iou(a, above)[0, 0] == pytest.approx(1.0)
    assert box3d_iou(a, above)[0, 0] == 0.0


def test_axis_aligned_overlaps_by_hand() -> None:
    a = box()  # footprint x in [-2, 2], z in [9, 11], y in [-0.5, 1]
    # shifted 1 m along x: overlap 3 x 2 = 6, union 8 + 8 - 6 = 10
    assert bev_iou(a, box(x=1.0))[0, 0] == pytest.approx(0.6)
    # turned 90 degrees: 2 x 2 square in common, union 12
    assert bev_iou(a, box(ry=np.pi / 2))[0, 0] == pytest.approx(1 / 3)
    # shifted 1 m along x and 0.75 m up: BEV inter 6, height overlap 0.75 -> inter 4.5, union 24 - 4.5
    assert box3d_iou(a, box(x=1.0, y=0.25))[0, 0] == pytest.approx(4.5 / 19.5)
    # a small box fully inside: IoU = volume ratio
    inner = box(h=0.5, w=1.0, length=1.0, y=0.5)
    assert box3d_iou(a, inner)[0, 0] == pytest.approx(0.5 / 12.0)
    # corner overlap: shifted (1, 0.5) in (x, z): 3 x 1.5 = 4.5, union 16 - 4.5
    assert bev_iou(a, box(x=1.0, z=10.5))[0, 0] == pytest.approx(4.5 / 11.5)


def test_rotated_square_in_square() -> None:
    # unit square and the same square turned 45 degrees about its centre: octagon of area 2(sqrt2 - 1)
    sq = box(w=1.0, length=1.0)
    diamond = box(w=1.0, length=1.0, ry=np.pi / 4)
    inter = 2.0 * (np.sqrt(2.0) - 1.0)
    assert bev_iou(sq, diamond)[0, 0] == pytest.approx(inter / (2.0 - inter), rel=1e-12)


def test_pairwise_shape_and_empty() -> None:
    a = np.concatenate([box(), box(x=1.0), box(x=30.0)])
    iou = bev_iou(a, a[:2])
    assert iou.shape == (3, 2)
    np.testing.assert_allclose(iou[:2], bev_iou(a[:2], a[:2]))
    np.testing.assert_allclose(iou[:2], iou[:2].T)
    assert bev_iou(a, np.zeros((0, 7))).shape == (3, 0)
    assert box3d_iou(np.zeros((0, 7)), a).shape == (0, 3)


def test_clip_matches_known_polygon_area() -> None:
    # triangle-free check of the clipper itself: two squares offset by (0.5, 0.5) share a 0.5 x 0.5 square
    sq = np.array([[[0, 0], [1, 0], [1, 1], [0, 1]]], dtype=float)
    assert convex_intersection_area(sq, sq + 0.5)[0] == pytest.approx(0.25)


@settings(max_examples=60, deadline=None)
@given(
    dx=st.floats(-4, 4),
    dz=st.floats(-4, 4),
    dy=st.floats(-1.5, 1.5),
    ry_a=st.floats(-np.pi, np.pi),
    ry_b=st.floats(-np.pi, np.pi),
    turn=st.floats(-np.pi, np.pi),
    w=st.floats(0.5, 3.0),
    length=st.floats(0.5, 6.0),
)
def test_iou_invariant_to_rotating_the_scene(dx, dz, dy, ry_a, ry_b, turn, w, length) -> None:
    """Rotating both boxes about the vertical axis through a common point leaves BEV and 3D IoU unchanged;
    IoU is symmetric and in [0, 1]."""
    a = box(x=0.0, z=10.0, ry=ry_a)
    b = box(x=dx, y=1.0 + dy, z=10.0 + dz, w=w, length=length, ry=ry_b)

    def turned(bx: np.ndarray) -> np.ndarray:
        out = bx.copy()
        c, s = np.cos(turn), np.sin(turn)
        x, z = out[0, 0], out[0, 2] - 10.0
        out[0, 0], out[0, 2] = c * x + s * z, -s * x + c * z + 10.0
        out[0, 6] += turn
        return out

    for fn in (bev_iou, box3d_iou):
        iou = fn(a, b)[0, 0]
        assert 0.0 <= iou <= 1.0 + 1e-12
        assert fn(b, a)[0, 0] == pytest.approx(iou, abs=1e-9)
        assert fn(turned(a), turned(b))[0, 0] == pytest.approx(iou, abs=1e-9)
    # the clipped footprint corners are counter-clockwise whatever the yaw
    c = bev_corners(b)[0]
    e1, e2 = c[1] - c[0], c[2] - c[1]
    assert e1[0] * e2[1] - e1[1] * e2[0] > 0
