"""DetectionResult -> vision_msgs / MarkerArray builders: round trips (hypothesis), both message flavours,
the simulator's ground-truth box convention, CDR serialisation, markers, the annotated-image drawer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from perception_pkg.bag import get_typestore
from perception_pkg.decoders.types import Detections
from perception_pkg.detection import DetectionResult
from perception_pkg.geometry3d.box3d import box3d_corners
from perception_pkg.geometry3d.camera import CameraModel
from perception_pkg.msgs import (
    MessageFactory,
    bbox3d_to_kitti,
    detection2d_array,
    detection2d_array_to_xyxy,
    detection3d_array,
    detection3d_array_to_kitti,
    kitti_to_bbox3d,
    make_header,
)
from perception_pkg.viz.detections import WIREFRAME_EDGES, class_colours, draw_detections
from perception_pkg.viz.markers import detection_markers

CLASSES = ("person", "car")
STORE = get_typestore()
BAG_TYPES = MessageFactory.rosbags(STORE)


def _flavours() -> list:
    out = [pytest.param(BAG_TYPES, id="rosbags")]
    try:
        out.append(pytest.param(MessageFactory.rclpy(), id="rclpy"))
    except ImportError:  # no ROS here: the rosbags flavour still runs
        pass
    return out


FLAVOURS = _flavours()


def _header(types: MessageFactory, stamp_ns: int = 1_700_000_000_123_456_789, frame: str = "cam"):
    return make_header(types, stamp_ns, frame)


def _result(boxes: np.ndarray, boxes3d: np.ndarray | None = None, seed: int = 0) -> DetectionResult:
    n = len(boxes)
    rng = np.random.default_rng(seed)
    dets = Detections(
        np.asarray(boxes, dtype=np.float64),
        np.sort(rng.uniform(0.05, 1.0, n))[::-1],
        rng.integers(0, len(CLASSES), n).astype(np.int64),
    )
    return DetectionResult(dets, CLASSES, boxes3d)


finite = st.floats(-2000, 2000, allow_nan=False, width=64)
box_rows = st.tuples(finite, finite, st.floats(0.0, 800), st.floats(0.0, 800)).map(
    lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]]
)
kitti_rows = st.tuples(
    st.floats(-30, 30),
    st.floats(-3, 3),
    st.floats(1, 80),
    st.floats(0.2, 4),
    st.floats(0.2, 3),
    st.floats(0.2, 6),
    st.floats(-np.pi, np.pi),
)


@pytest.mark.parametrize("types", FLAVOURS)
@settings(max_examples=60, deadline=None)
@given(boxes=st.lists(box_rows, min_size=0, max_size=12))
def test_detection2d_array_round_trips_xyxy_labels_scores(types: MessageFactory, boxes: list) -> None:
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    result = _result(arr)
    header = _header(types)
    msg = detection2d_array(result, header, types)
    assert msg.header is header and len(msg.detections) == len(arr)
    back, scores, labels = detection2d_array_to_xyxy(msg)
    # centre/size and back in float64: exact up to one rounding of the coordinates' magnitude
    np.testing.assert_allclose(back, arr, rtol=0, atol=1e-9 * (1 + np.abs(arr).max(initial=0)))
    np.testing.assert_array_equal(scores, result.detections.scores)
    assert labels == result.labels()
    for i, d in enumerate(msg.detections):
        assert d.id == str(i) and d.header.frame_id == "cam"
        # ROS pixel convention in the message: the first pixel is centred on 0 (stack: spans [0, 1))
        assert d.results[0].pose.pose.position.x == pytest.approx((arr[i, 0] + arr[i, 2]) / 2 - 0.5)
        assert d.bbox.center.position.y == pytest.approx((arr[i, 1] + arr[i, 3]) / 2 - 0.5)


def _corners_from_message(det) -> np.ndarray:
    """Corners from a Detection3D alone: centre + R(quaternion) @ (+-l/2, +-w/2, +-h/2)."""
    from scipy.spatial.transform import Rotation

    c, q, s = det.bbox.center.position, det.bbox.center.orientation, det.bbox.size
    rot = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    return (signs * [s.x, s.y, s.z] / 2) @ rot.T + [c.x, c.y, c.z]


def _same_point_sets(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    d = np.linalg.norm(a[:, None] - b[None], axis=-1)
    return bool(d.min(axis=1).max() < tol and d.min(axis=0).max() < tol)


@pytest.mark.parametrize("types", FLAVOURS)
@settings(max_examples=60, deadline=None)
@given(rows=st.lists(kitti_rows, min_size=1, max_size=8), nan_row=st.integers(0, 8))
def test_detection3d_corners_from_message_equal_box3d_corners(
    types: MessageFactory, rows: list, nan_row: int
) -> None:
    boxes3d = np.asarray(rows, dtype=np.float64)
    if nan_row < len(boxes3d):
        boxes3d[nan_row] = np.nan  # a detection without 3D is left out, the others keep their row id
    boxes2d = np.tile([10.0, 20.0, 50.0, 90.0], (len(boxes3d), 1))
    result = _result(boxes2d, boxes3d)
    msg = detection3d_array(result, _header(types, frame="camera_optical"), types)
    keep = np.flatnonzero(np.isfinite(boxes3d).all(axis=1))
    assert [d.id for d in msg.detections] == [str(r) for r in keep]
    expected = box3d_corners(boxes3d[keep, :3], boxes3d[keep, 3:6], boxes3d[keep, 6])
    for det, corners in zip(msg.detections, expected, strict=True):
        assert _same_point_sets(_corners_from_message(det), corners, 1e-9 * 100)
    back, scores, labels, ids = detection3d_array_to_kitti(msg)
    np.testing.assert_allclose(back[:, :6], boxes3d[keep, :6], atol=1e-9)
    dyaw = (back[:, 6] - boxes3d[keep, 6] + np.pi) % (2 * np.pi) - np.pi
    np.testing.assert_allclose(dyaw, 0.0, atol=1e-9)
    np.testing.assert_array_equal(scores, result.detections.scores[keep])
    assert labels == [result.labels()[r] for r in keep] and ids == [str(r) for r in keep]


def test_3d_convention_matches_the_simulators_ground_truth_boxes() -> None:
    """The simulator writes Box3D (centre, size l/w/h, object->camera rotation) for labels; its KITTI form
    through our builder must give back the same centre, size and rotation."""
    from scipy.spatial.transform import Rotation

    truth = pytest.importorskip("perception_pkg.sim.truth")
    rng = np.random.default_rng(3)
    # level objects: object z (up) is camera -y; yaw about camera y
    for _ in range(20):
        yaw = rng.uniform(-np.pi, np.pi)
        r_cam = Rotation.from_euler("y", yaw).as_matrix()
        # object axes (forward, left, up) at yaw 0 point along camera (+x, +z, -y)
        rot = r_cam @ np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
        box = truth.Box3D(rng.uniform([-10, -1, 5], [10, 2, 60]), rng.uniform(0.3, 5, 3), rot)
        k = box.kitti()
        kitti = np.array([[*k["location"], *k["dimensions"], k["rotation_y"]]])
        centres, quats, sizes = kitti_to_bbox3d(kitti)
        np.testing.assert_allclose(centres[0], box.centre, atol=1e-9)
        np.testing.assert_allclose(sizes[0], box.size, atol=1e-12)
        np.testing.assert_allclose(Rotation.from_quat(quats[0]).as_matrix(), box.rotation, atol=1e-9)
        np.testing.assert_allclose(bbox3d_to_kitti(centres, quats, sizes), kitti, atol=1e-9)


def test_no_3d_gives_an_empty_array_with_the_header() -> None:
    result = _result(np.array([[0.0, 0, 10, 10]]))
    header = _header(BAG_TYPES, frame="camera_optical")
    msg = detection3d_array(result, header, BAG_TYPES)
    assert msg.detections == [] and msg.header.frame_id == "camera_optical"


@pytest.mark.parametrize("types", FLAVOURS)
def test_markers_wireframes_labels_lifetime_and_deletes(types: MessageFactory) -> None:
    boxes3d = np.array(
        [[1.0, 1.5, 10.0, 1.5, 1.6, 4.0, 0.3], [np.nan] * 7, [-2.0, 1.6, 8.0, 1.7, 0.5, 0.6, -1]]
    )
    result = _result(np.tile([0.0, 0, 10, 10], (3, 1)), boxes3d)
    header = _header(types, frame="camera_optical")
    msg = detection_markers(result, header, types, lifetime_s=0.25, previous_count=5)
    m = types.Marker
    adds = [k for k in msg.markers if k.action == m.ADD]
    deletes = [(k.ns, k.id) for k in msg.markers if k.action == m.DELETE]
    boxes = [k for k in adds if k.type == m.LINE_LIST]
    assert [k.id for k in boxes] == [0, 2]
    assert all(len(k.points) == 2 * len(WIREFRAME_EDGES) for k in boxes)
    assert all((k.lifetime.sec, k.lifetime.nanosec) == (0, 250_000_000) for k in adds)
    assert [k.text.split()[0] for k in adds if k.type == m.TEXT_VIEW_FACING] == [
        result.labels()[0],
        result.labels()[2],
    ]
    # row 1 has no 3D box and rows 3, 4 were sent last time: each deleted in both namespaces
    assert sorted(deletes) == sorted(
        (ns, i) for i in (1, 3, 4) for ns in ("detection_boxes", "detection_labels")
    )
    # the first LINE_LIST pair is edge 0-1 of the box3d corner order
    corners = box3d_corners(boxes3d[0, :3], boxes3d[0, 3:6], boxes3d[0, 6])
    p0, p1 = boxes[0].points[0], boxes[0].points[1]
    np.testing.assert_allclose([[p0.x, p0.y, p0.z], [p1.x, p1.y, p1.z]], corners[[0, 1]], atol=1e-12)
    rgb = class_colours(result.detections.class_ids[:1])[0] / 255.0
    assert (
        boxes[0].color.r == pytest.approx(rgb[0], abs=1e-6) and boxes[0].header.frame_id == "camera_optical"
    )


def test_rosbags_messages_serialise_to_cdr_and_back() -> None:
    boxes3d = np.array([[1.0, 1.5, 10.0, 1.5, 1.6, 4.0, 0.3]])
    result = _result(np.array([[5.0, 6, 50, 80]]), boxes3d)
    header = _header(BAG_TYPES)
    for msg in (
        detection2d_array(result, header, BAG_TYPES),
        detection3d_array(result, header, BAG_TYPES),
        detection_markers(result, header, BAG_TYPES, previous_count=3),
    ):
        raw = STORE.serialize_cdr(msg, msg.__msgtype__)
        again = STORE.deserialize_cdr(raw, msg.__msgtype__)
        assert STORE.serialize_cdr(again, msg.__msgtype__) == raw
    back, _, _ = detection2d_array_to_xyxy(STORE.deserialize_cdr(raw_2d := STORE.serialize_cdr(
        detection2d_array(result, header, BAG_TYPES), "vision_msgs/msg/Detection2DArray"),
        "vision_msgs/msg/Detection2DArray"))  # fmt: skip
    assert raw_2d and np.array_equal(back, [[5.0, 6, 50, 80]])


def _camera(w: int = 160, h: int = 120) -> CameraModel:
    K = np.array([[100.0, 0, w / 2], [0, 100.0, h / 2], [0, 0, 1]])
    return CameraModel(w, h, K, np.zeros(5), np.eye(3), np.hstack([K, np.zeros((3, 1))]), "plumb_bob", "cam")


def test_drawer_draws_boxes_in_class_colours_and_leaves_the_input_alone() -> None:
    image = np.zeros((120, 160, 3), np.uint8)
    image.setflags(write=False)  # a message view is often read-only
    boxes3d = np.array([[0.0, 1.0, 8.0, 1.5, 1.0, 2.0, 0.4], [np.nan] * 7])
    result = _result(np.array([[10.0, 10, 60, 70], [80.0, 20, 150, 100]]), boxes3d)
    out = draw_detections(image, result, _camera(), labels=False, thickness=1)
    assert not image.any() and out.shape == image.shape and out.flags.writeable
    bgr = class_colours(result.detections.class_ids)[:, ::-1]
    # the left edge of each 2D box carries its class colour
    assert np.array_equal(out[40, 10], bgr[0]) and np.array_equal(out[60, 80], bgr[1])
    # the 3D wireframe of row 0 is drawn inside the image (around its projected centre column)
    assert (out[:, 60:100] == bgr[0]).all(axis=-1).sum() > 20
    labelled = draw_detections(image, result, None)
    assert (labelled != out).any()  # labels drawn; no camera: no wireframe, no error
    assert draw_detections(image, _result(np.zeros((0, 4)))).sum() == 0


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, (3, 4), elements=st.floats(-1e4, 1e4)))
def test_drawer_never_fails_on_boxes_outside_the_image(boxes: np.ndarray) -> None:
    image = np.zeros((30, 40, 3), np.uint8)
    out = draw_detections(image, _result(boxes))
    assert out.shape == image.shape
