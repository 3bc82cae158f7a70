"""The PCN object frame: centre on the box, rotate by -yaw, divide by the length; the inverse is exact."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_pkg.completion.frame import Boxes, ObjectFrames, rotation_yaws, yaw_rotations


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_object_frame_round_trip_is_exact(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 6))
    boxes = Boxes.from_yaw(rng.uniform(-50, 50, (n, 3)), rng.uniform(0.3, 6, (n, 3)), rng.uniform(-4, 4, n))
    frames = boxes.frames()
    pts = rng.uniform(-60, 60, (n, 100, 3))
    back = frames.to_sensor(frames.to_object(pts))
    assert np.abs(back - pts).max() < 1e-10
    for i in range(n):  # the per-box form agrees with the batched one
        np.testing.assert_allclose(frames.to_object(pts[i], i), frames.to_object(pts)[i], atol=1e-12)


def test_pcn_convention_heading_becomes_plus_x_and_length_becomes_one() -> None:
    yaw, length = 0.7, 4.0
    boxes = Boxes.from_yaw([[10.0, -2.0, 0.5]], [[length, 1.8, 1.5]], [yaw])
    heading = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    left = np.array([-np.sin(yaw), np.cos(yaw), 0.0])
    front = boxes.centres[0] + heading * length / 2
    side = boxes.centres[0] + left * 0.9
    q = boxes.frames().to_object(np.stack([front, side, boxes.centres[0] + [0, 0, 0.75]]), 0)
    np.testing.assert_allclose(q, [[0.5, 0, 0], [0, 0.9 / length, 0], [0, 0, 0.75 / length]], atol=1e-12)


def test_box_transform_and_corners() -> None:
    rng = np.random.default_rng(1)
    boxes = Boxes.from_yaw(rng.uniform(-5, 5, (3, 3)), rng.uniform(1, 4, (3, 3)), rng.uniform(-3, 3, 3))
    t = np.eye(4)
    t[:3, :3] = yaw_rotations([1.1])[0] @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0.0]])
    t[:3, 3] = [1.0, 2.0, 3.0]
    moved = boxes.transformed(t)
    np.testing.assert_allclose(moved.corners(), boxes.corners() @ t[:3, :3].T + t[:3, 3], atol=1e-12)
    np.testing.assert_allclose(
        rotation_yaws(boxes.rotations), np.arctan2(np.sin(boxes_yaws(boxes)), np.cos(boxes_yaws(boxes)))
    )
    # a point's object-frame coordinates do not depend on the frame the box is expressed in
    p = rng.uniform(-5, 5, (20, 3))
    np.testing.assert_allclose(
        moved.frames().to_object(p @ t[:3, :3].T + t[:3, 3], 1), boxes.frames().to_object(p, 1), atol=1e-12
    )


def boxes_yaws(boxes: Boxes) -> np.ndarray:
    return np.arctan2(boxes.rotations[:, 1, 0], boxes.rotations[:, 0, 0])


def test_zero_length_box_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="lengths"):
        ObjectFrames(np.zeros((1, 3)), np.eye(3)[None], np.zeros(1))
