"""The completion pipeline at the message level (what the node and replay both run): scan + boxes in,
one PointCloud2 (x, y, z, object_id) out with the scan's header; boxes in the LiDAR frame, in a camera
frame through /tf_static or through the configured extrinsics give the same completion; empty scans,
NaN points, boxes with too few points, other classes and missing transforms are counted. A planted
identity model (its output is its input) makes every output point checkable exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.completion import box_points, detections3d, planted_identity_card, quat_z, tf_static

from perception_pkg.completion import Completer
from perception_pkg.msgs import (
    MessageFactory,
    MessageFormatError,
    make_header,
    pointcloud_to_structured,
    structured_to_pointcloud,
    xyz_to_pointcloud,
)
from perception_pkg.pipelines import PIPELINES
from perception_pkg.pipelines.completion import CompletionSettings, create

STAMP = 1_700_000_000_250_000_000
CARS = [  # centre, size (l, w, h), yaw, id, points
    ((8.0, -3.0, -0.95), (4.2, 1.8, 1.5), 0.3, "7", 300),
    ((-12.0, 4.0, -0.9), (4.6, 1.9, 1.6), -2.0, "9", 1500),
]
EMPTY_CAR = ((30.0, 20.0, -0.9), (4.0, 1.8, 1.5), 0.0, "11")
PERSON = ((5.0, 5.0, -0.8), (0.5, 0.6, 1.8), 0.0, "12")
T_BASE_LIDAR = np.array([[1, 0, 0, 0.2], [0, 1, 0, 0], [0, 0, 1, 1.73], [0, 0, 0, 1.0]])
# camera optical (x right, y down, z forward) at 1.6 m, 0.3 m ahead of base_link
T_BASE_CAMERA = np.array([[0, 0, 1, 0.5], [-1, 0, 0, 0], [0, -1, 0, 1.6], [0, 0, 0, 1.0]])


@pytest.fixture(scope="module")
def types() -> MessageFactory:
    return MessageFactory.rosbags()


@pytest.fixture(scope="module")
def completer(tmp_path_factory: pytest.TempPathFactory) -> Completer:
    return Completer.from_card(planted_identity_card(tmp_path_factory.mktemp("planted")), "onnxruntime")


def _scene(nan: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(3)
    ground = np.c_[rng.uniform(-30, 30, (4000, 2)), np.full(4000, -1.73) + rng.normal(0, 0.01, 4000)]
    cars = [box_points(rng, c, s, y, n) for c, s, y, _, n in CARS]
    person = box_points(rng, PERSON[0], PERSON[1], 0.0, 80)
    xyz = np.concatenate([ground, *cars, person])
    if nan:
        xyz = np.concatenate([xyz, np.full((nan, 3), np.nan)])
        xyz[-1, 0] = 3.0  # a point with only z NaN is dropped as well
    return xyz.astype(np.float32), cars


def _lidar_boxes() -> list[dict]:
    out = [dict(centre=c, size=s, quat=quat_z(y), id=i, label="car") for c, s, y, i, _ in CARS]
    out.append(dict(centre=EMPTY_CAR[0], size=EMPTY_CAR[1], quat=quat_z(0.0), id=EMPTY_CAR[3], label="car"))
    out.append(dict(centre=PERSON[0], size=PERSON[1], quat=quat_z(0.0), id=PERSON[3], label="person"))
    return out


def _in_camera(boxes: list[dict]) -> list[dict]:
    """The same boxes expressed in the camera optical frame."""
    from scipy.spatial.transform import Rotation

    t_cam_lidar = np.linalg.inv(T_BASE_CAMERA) @ T_BASE_LIDAR
    out = []
    for b in boxes:
        rot = t_cam_lidar[:3, :3] @ Rotation.from_quat(b["quat"]).as_matrix()
        centre = t_cam_lidar[:3, :3] @ np.asarray(b["centre"]) + t_cam_lidar[:3, 3]
        out.append({**b, "centre": centre, "quat": Rotation.from_matrix(rot).as_quat()})
    return out


def _pipeline(types, completer, **settings):
    params = dict(
        boxes_topic="/gt/boxes", tf_topic="/tf_static", output_topic="/out", markers_topic="/markers"
    )
    return create(CompletionSettings(**{**params, **settings}), types, live=False, completer=completer)


def _run(pipe, types, xyz, boxes, frame="camera_optical", stamp=STAMP, tf=True):
    out = []
    if tf and "tf" in [p.key for p in pipe.inputs]:
        out += pipe.feed("tf", tf_static(types, stamp, "base_link", "lidar", T_BASE_LIDAR), 0.0)
        out += pipe.feed("tf", tf_static(types, stamp, "base_link", "camera_optical", T_BASE_CAMERA), 0.0)
    out += pipe.feed("cloud", xyz_to_pointcloud(xyz, make_header(types, stamp, "lidar"), types), 0.1)
    assert out == []  # the scan waits for its boxes
    out += pipe.feed("boxes", detections3d(types, make_header(types, stamp, frame), boxes), 0.12)
    return dict(out)


def _objects(cloud) -> dict[int, np.ndarray]:
    arr = pointcloud_to_structured(cloud)
    xyz = np.stack([arr["x"], arr["y"], arr["z"]], axis=1)
    return {int(k): xyz[arr["object_id"] == k] for k in np.unique(arr["object_id"])}


def test_completion_is_registered_as_a_pipeline() -> None:
    assert PIPELINES["completion"].settings is CompletionSettings
    assert PIPELINES["completion"].create is create


def test_lidar_frame_boxes_complete_each_object_from_exactly_its_own_points(types, completer) -> None:
    xyz, cars = _scene(nan=7)
    pipe = _pipeline(types, completer)
    out = _run(pipe, types, xyz, _lidar_boxes(), frame="lidar")
    cloud = out["completed"]
    assert cloud.header.frame_id == "lidar" and cloud.header.stamp.sec == STAMP // 10**9
    assert cloud.header.stamp.nanosec == STAMP % 10**9
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "object_id"]
    objects = _objects(cloud)
    assert sorted(objects) == [7, 9]
    for (centre, size, _, oid, n), pts_in in zip(CARS, cars, strict=True):
        got = objects[int(oid)]
        assert got.shape == (2048, 3)
        # the box's points above the ground margin (0.15 m over its bottom face) are the object
        pts_in = pts_in[pts_in[:, 2] >= centre[2] - size[2] / 2 + 0.15]
        # the identity model returns the resampled input: every output point is an input point (after the
        # round trip through the object frame) and, with fewer than 1,024 points, every input point is there
        d = np.linalg.norm(got[:, None, :] - pts_in[None, :, :].astype(np.float32), axis=2)
        assert d.min(axis=1).max() < 1e-4
        if n < 1024:
            assert d.min(axis=0).max() < 1e-4
    c = dict(pipe.diagnostics(0.2))
    assert c["completed"] == "2" and c["skipped_few_points"] == "1" and c["skipped_class"] == "1"
    assert c["nan_points"] == "7" and c["matched"] == "1" and c["scans"] == "1"
    kinds = sorted((m.ns, m.type) for m in out["markers"].markers)
    assert kinds == [
        ("completion_boxes", 5),
        ("completion_boxes", 5),
        ("completion_points", 8),
        ("completion_points", 8),
    ]


def test_camera_frame_boxes_through_tf_static_and_through_config_give_the_same_completion(
    types, completer
) -> None:
    from scipy.spatial.transform import Rotation

    xyz, _ = _scene()
    ref = _objects(_run(_pipeline(types, completer), types, xyz, _lidar_boxes(), frame="lidar")["completed"])
    cam_boxes = _in_camera(_lidar_boxes())
    via_tf = _objects(_run(_pipeline(types, completer), types, xyz, cam_boxes)["completed"])
    t = np.linalg.inv(T_BASE_LIDAR) @ T_BASE_CAMERA  # camera -> lidar
    ext = (*t[:3, 3], *Rotation.from_matrix(t[:3, :3]).as_quat())
    config = _pipeline(types, completer, extrinsics="config", boxes_to_lidar=tuple(float(v) for v in ext))
    assert "tf" not in [p.key for p in config.inputs]
    via_config = _objects(_run(config, types, xyz, cam_boxes)["completed"])
    for got in (via_tf, via_config):
        assert sorted(got) == sorted(ref)
        for k in ref:
            np.testing.assert_allclose(got[k], ref[k], atol=1e-4)


def test_boxes_in_a_frame_with_no_transform_are_counted_and_give_an_empty_cloud(types, completer) -> None:
    xyz, _ = _scene()
    pipe = _pipeline(types, completer)
    out = _run(pipe, types, xyz, _lidar_boxes(), frame="radar", tf=False)
    assert out["completed"].width == 0
    assert dict(pipe.diagnostics())["no_transform"] == "1"


def test_empty_scan_is_counted_and_still_answered_with_its_header(types, completer) -> None:
    pipe = _pipeline(types, completer)
    out = _run(pipe, types, np.zeros((0, 3), np.float32), _lidar_boxes(), frame="lidar")
    assert out["completed"].width == 0 and out["completed"].header.frame_id == "lidar"
    nan_only = _run(
        pipe, types, np.full((5, 3), np.nan, np.float32), _lidar_boxes(), frame="lidar", stamp=STAMP + 1
    )
    assert nan_only["completed"].width == 0
    c = dict(pipe.diagnostics())
    assert c["empty_scans"] == "2" and c["nan_points"] == "5" and c["completed"] == "0"


def test_scan_without_xyz_fields_is_malformed(types, completer) -> None:
    pipe = _pipeline(types, completer, boxes_topic="")
    arr = np.zeros(4, dtype=[("intensity", "<f4")])
    with pytest.raises(MessageFormatError):
        pipe.feed("cloud", structured_to_pointcloud(arr, make_header(types, STAMP, "lidar"), types), 0.0)


def test_min_points_score_and_max_objects_limits_are_counted(types, completer) -> None:
    xyz, _ = _scene()
    boxes = _lidar_boxes()
    boxes[0]["score"] = 0.2
    pipe = _pipeline(types, completer, min_score=0.5, min_points=400, max_objects=1)
    objects = _objects(_run(pipe, types, xyz, boxes, frame="lidar")["completed"])
    c = dict(pipe.diagnostics())
    # car 7 is below the score; of cars 9 and 11 the nearer (9) is kept; 11 is beyond max_objects
    assert sorted(objects) == [9]
    assert c["skipped_score"] == "1" and c["skipped_max_objects"] == "1" and c["skipped_few_points"] == "0"


def test_boxes_from_clustering_when_no_boxes_topic(types, completer) -> None:
    rng = np.random.default_rng(4)
    gx = rng.uniform(-20, 20, (20000, 2))
    ground = np.c_[gx, np.full(len(gx), -1.73) + rng.normal(0, 0.01, len(gx))]
    # a car-sized block standing on the ground, seen on two sides (an L), yaw 0.4
    car = box_points(rng, (9.0, 2.0, -0.98), (4.4, 1.8, 1.5), 0.4, 900)
    xyz = np.concatenate([ground, car]).astype(np.float32)
    pipe = _pipeline(types, completer, boxes_topic="")
    assert [p.key for p in pipe.inputs] == ["cloud"]
    out = dict(pipe.feed("cloud", xyz_to_pointcloud(xyz, make_header(types, STAMP, "lidar"), types), 0.0))
    objects = _objects(out["completed"])
    assert len(objects) == 1
    got = next(iter(objects.values()))
    assert np.linalg.norm(got.mean(0)[:2] - car.mean(0)[:2]) < 0.3
    assert dict(pipe.diagnostics())["boxes_source"] == "clustering"


def test_replay_without_the_boxes_topic_falls_back_to_clustering(types, completer) -> None:
    pipe = _pipeline(types, completer)
    pipe.inputs_available({"cloud", "tf"})
    assert pipe.matcher is None and "clustering" in dict(pipe.diagnostics())["boxes_source"]


def test_sample_bag_replay_with_ground_truth_lidar_boxes(tmp_path: Path) -> None:
    from perception_pkg.replay import replay_bag
    from perception_pkg.sim.generate import ensure_sample_bag

    card = planted_identity_card(tmp_path / "planted")
    res = replay_bag(
        ensure_sample_bag(), tmp_path / "r", ["completion"], progress=False,
        overrides={"completion.boxes_topic": "/ground_truth/detections_3d_lidar",
                   "completion.model_card": str(card),
                   "completion.backend": "onnxruntime"},
    )  # fmt: skip
    counters = res.summary["pipelines"]["completion"]["counters"]
    assert counters["matched"] == "10" and counters["scans"] == "10" and int(counters["completed"]) >= 30
    assert res.summary["topics"]["/completion/completed"]["count"] == 10
