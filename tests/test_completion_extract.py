"""Points of each box (grown, above the ground margin) against a brute-force test; host resampling;
the static transform tree; the clustering box fit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_pkg.completion.cluster import ClusterParams, cluster_boxes, fit_ground
from perception_pkg.completion.extract import points_in_boxes
from perception_pkg.completion.frame import Boxes, yaw_rotations
from perception_pkg.completion.sampling import resample
from perception_pkg.completion.transforms import StaticTransforms


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.0, 0.5), st.floats(0.0, 0.4))
def test_points_in_boxes_matches_brute_force(seed: int, grow: float, margin: float) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5))
    boxes = Boxes.from_yaw(rng.uniform(-8, 8, (n, 3)), rng.uniform(0.5, 5, (n, 3)), rng.uniform(-4, 4, n))
    if seed % 3 == 0:  # tilted boxes too (a camera-frame box that is not level)
        tilt = yaw_rotations([0.3])[0][[0, 2, 1]][:, [0, 2, 1]]
        boxes.rotations = np.einsum("ij,njk->nik", tilt, boxes.rotations)
    xyz = rng.uniform(-12, 12, (5000, 3)).astype(np.float32)
    got = points_in_boxes(xyz, boxes, grow=grow, ground_margin=margin)
    for i in range(n):
        local = (xyz.astype(np.float64) - boxes.centres[i]) @ boxes.rotations[i]
        h = boxes.sizes[i] / 2
        want = np.flatnonzero(
            (np.abs(local[:, 0]) <= h[0] + grow) & (np.abs(local[:, 1]) <= h[1] + grow)
            & (local[:, 2] <= h[2] + grow) & (local[:, 2] >= -h[2] + margin)
        )  # fmt: skip
        np.testing.assert_array_equal(got.indices[i], want)


def test_resample_duplicates_when_sparse_and_subsamples_when_dense() -> None:
    rng = np.random.default_rng(0)
    few = np.arange(30 * 3, dtype=np.float32).reshape(30, 3)
    out = resample(few, 1024, np.random.default_rng(1))
    assert out.shape == (1024, 3)
    assert {tuple(r) for r in out} == {tuple(r) for r in few}  # every point, nothing new
    many = rng.normal(size=(5000, 3))
    out = resample(many, 1024, np.random.default_rng(1))
    assert len({tuple(r) for r in out}) == 1024  # no duplicates
    np.testing.assert_array_equal(out, resample(many, 1024, np.random.default_rng(1)))


def test_static_transforms_chain_through_a_common_parent() -> None:
    tf = StaticTransforms()
    t_base_lidar = np.eye(4)
    t_base_lidar[:3, 3] = [0.2, 0.0, 1.73]
    t_base_cam = np.eye(4)
    t_base_cam[:3, :3] = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0.0]])
    t_base_cam[:3, 3] = [0.5, 0.0, 1.6]
    tf.add("base_link", "lidar", t_base_lidar)
    tf.add("/base_link", "camera_optical", t_base_cam)
    t = tf.lookup("lidar", "camera_optical")
    np.testing.assert_allclose(t, np.linalg.inv(t_base_lidar) @ t_base_cam, atol=1e-12)
    np.testing.assert_allclose(tf.lookup("camera_optical", "lidar") @ t, np.eye(4), atol=1e-12)
    assert tf.lookup("lidar", "radar") is None
    np.testing.assert_array_equal(tf.lookup("lidar", "lidar"), np.eye(4))


def test_ground_plane_and_car_sized_cluster_boxes() -> None:
    rng = np.random.default_rng(2)
    g = rng.uniform(-25, 25, (15000, 2))
    slope = 0.02  # a gently sloping road
    ground = np.c_[g, -1.73 + slope * g[:, 0] + rng.normal(0, 0.01, len(g))]
    plane = fit_ground(ground, 0.1, np.random.default_rng(0))
    assert plane is not None and abs(plane[0] / plane[2] + slope) < 2e-3
    cars = []
    for centre, size, yaw in (((10.0, -3.0), (4.5, 1.8, 1.5), 0.3), ((-6.0, 5.0), (3.8, 1.7, 1.4), -1.2)):
        local = rng.uniform(-0.5, 0.5, (1500, 3)) * size
        rot = yaw_rotations([yaw])[0]
        pts = local @ rot.T
        pts[:, :2] += centre
        pts[:, 2] += -1.73 + slope * centre[0] + size[2] / 2
        cars.append((pts, centre, size, yaw))
    clutter = np.c_[rng.uniform(-0.1, 0.1, (200, 2)) + 3.0, rng.uniform(-1.6, 2.0, 200)]  # a pole
    xyz = np.concatenate([ground, clutter] + [c[0] for c in cars])
    boxes, counts = cluster_boxes(xyz, ClusterParams())
    assert counts["cluster_boxes"] == 2 and len(boxes) == 2
    for _, centre, size, yaw in cars:
        i = int(np.argmin(np.linalg.norm(boxes.centres[:, :2] - centre, axis=1)))
        assert np.linalg.norm(boxes.centres[i, :2] - centre) < 0.1
        np.testing.assert_allclose(boxes.sizes[i], size, atol=0.12)
        got = np.arctan2(boxes.rotations[i, 1, 0], boxes.rotations[i, 0, 0])
        assert abs(np.sin(got - yaw)) < 0.03  # heading modulo pi
