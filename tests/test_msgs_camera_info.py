"""sensor_msgs/CameraInfo <-> CameraModel: round trips, both message flavours, validation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers.convert import FLAVOURS, ROSBAGS, asset, flavour, header

from perception_pkg.geometry3d.camera import CameraModel
from perception_pkg.msgs import (
    MessageFormatError,
    camera_info_to_model,
    model_to_camera_info,
)


def _model() -> CameraModel:
    K = np.array([[721.5377, 0.0, 609.5593], [0.0, 721.5377, 172.854], [0.0, 0.0, 1.0]])
    P = np.hstack([K, np.array([[44.85728], [0.2163791], [0.002745884]])])
    return CameraModel(
        width=1242,
        height=375,
        K=K,
        D=np.array([-0.1, 0.01, 0.001, -0.002, 0.0]),
        R=np.eye(3),
        P=P,
        distortion_model="plumb_bob",
        frame_id="camera_optical",
        binning_x=2,
        binning_y=1,
        roi=(10, 20, 300, 400, True),
    )


@pytest.mark.parametrize("name", FLAVOURS)
def test_round_trip_keeps_every_field(name: str) -> None:
    types = flavour(name)
    model = _model()
    msg = model_to_camera_info(model, header(types, frame="camera_optical"), types)
    assert (msg.width, msg.height, msg.distortion_model) == (1242, 375, "plumb_bob")
    assert len(msg.k) == 9 and len(msg.p) == 12 and len(msg.d) == 5
    back = camera_info_to_model(msg)
    for attr in ("K", "D", "R", "P"):
        np.testing.assert_array_equal(getattr(back, attr), getattr(model, attr))
        assert getattr(back, attr).dtype == np.float64
    assert back.K.shape == (3, 3) and back.R.shape == (3, 3) and back.P.shape == (3, 4)
    assert (back.width, back.height, back.distortion_model, back.frame_id) == (
        1242,
        375,
        "plumb_bob",
        "camera_optical",
    )
    assert (back.binning_x, back.binning_y, back.roi) == (2, 1, (10, 20, 300, 400, True))
    assert (back.fx, back.fy, back.cx, back.cy) == (721.5377, 721.5377, 609.5593, 172.854)


def test_rclpy_and_rosbags_camera_info_give_identical_models() -> None:
    rclpy_types = flavour("rclpy")
    a = camera_info_to_model(model_to_camera_info(_model(), header(ROSBAGS), ROSBAGS))
    b = camera_info_to_model(model_to_camera_info(_model(), header(rclpy_types), rclpy_types))
    for attr in ("K", "D", "R", "P"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    assert (a.width, a.height, a.distortion_model, a.frame_id, a.roi) == (
        b.width,
        b.height,
        b.distortion_model,
        b.frame_id,
        b.roi,
    )


def test_camera_info_messages_serialise() -> None:
    from perception_pkg.bag import get_typestore

    store = get_typestore()
    msg = model_to_camera_info(_model(), header(ROSBAGS), ROSBAGS)
    again = store.deserialize_cdr(store.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)
    np.testing.assert_array_equal(camera_info_to_model(again).P, _model().P)
    rclpy_types = flavour("rclpy")
    from rclpy.serialization import deserialize_message, serialize_message

    rmsg = model_to_camera_info(_model(), header(rclpy_types), rclpy_types)
    rback = deserialize_message(serialize_message(rmsg), rclpy_types.CameraInfo)
    np.testing.assert_array_equal(camera_info_to_model(rback).D, _model().D)


def test_kitti_calibration_projects_through_the_model() -> None:
    path = asset("kitti/training/calib/000000.txt")
    rows = dict(line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
    P2 = np.array(rows["P2"].split(), dtype=np.float64).reshape(3, 4)
    model = CameraModel(1224, 370, P2[:, :3], np.zeros(5), np.eye(3), P2, "plumb_bob", "cam2")
    back = camera_info_to_model(model_to_camera_info(model, header(ROSBAGS), ROSBAGS))
    np.testing.assert_array_equal(back.P, P2)
    assert (back.fx, back.cx) == (P2[0, 0], P2[0, 2])
    assert 500 < back.fx < 1000 and 0 < back.cx < 1224  # a KITTI colour camera, not zeros


def _bad(**changes: object) -> Any:
    msg = model_to_camera_info(_model(), header(ROSBAGS), ROSBAGS)
    for key, value in changes.items():
        setattr(msg, key, value)
    return msg


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"k": np.zeros(8)}, "k", "expected 9 values, got 8"),
        ({"p": np.zeros(11)}, "p", "expected 12 values, got 11"),
        ({"r": np.zeros(10)}, "r", "expected 9 values"),
        ({"k": np.array([0.0, 0, 320, 0, 500, 240, 0, 0, 1])}, "k[0] (fx)", "positive focal length"),
        ({"k": np.array([500.0, 0, 320, 0, 0, 240, 0, 0, 1])}, "k[4] (fy)", "got 0.0"),
        ({"k": np.zeros(9)}, "k[0] (fx)", "not calibrated"),
        ({"p": np.array([-500.0, 0, 320, 0, 0, 500, 240, 0, 0, 0, 1, 0])}, "p[0] (fx)", "got -500.0"),
        ({"p": np.array([500.0, 0, 320, 0, 0, -1e-9, 240, 0, 0, 0, 1, 0])}, "p[5] (fy)", "positive focal"),
        ({"p": np.zeros(12)}, "p[0] (fx)", "positive focal length"),
        ({"p": np.array([500.0, 0, 320, 0, 0, 500, np.inf, 0, 0, 0, 1, 0])}, "p", "finite values"),
        ({"k": np.array([500.0, 0, np.nan, 0, 500, 240, 0, 0, 1])}, "k", "finite values"),
        ({"d": np.array([0.1, np.nan])}, "d", "finite"),
        ({"k": ["a"] * 9}, "k", "sequence of floats"),
        ({"d": np.zeros((2, 3))}, "d", "1-D"),
        ({"width": -1}, "width", "[0, 4294967296)"),
        ({"distortion_model": None}, "distortion_model", "string"),
    ],
)
def test_bad_camera_info_names_the_field(changes: dict, field: str, fragment: str) -> None:
    with pytest.raises(MessageFormatError) as info:
        camera_info_to_model(_bad(**changes))
    assert info.value.field == field
    assert info.value.msg_type == "sensor_msgs/msg/CameraInfo"
    assert fragment in str(info.value)


def test_matrix_shaped_k_is_accepted() -> None:
    msg = _bad(k=_model().K)  # 3x3 instead of the flat 9
    np.testing.assert_array_equal(camera_info_to_model(msg).K, _model().K)


def test_model_with_wrong_matrix_size_is_refused() -> None:
    model = _model()
    model.P = np.zeros((3, 3))
    with pytest.raises(MessageFormatError, match="3x4"):
        model_to_camera_info(model, header(ROSBAGS), ROSBAGS)
