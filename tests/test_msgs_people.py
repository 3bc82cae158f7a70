"""PersonArray / skeleton markers / person boxes: round trips for rosbags and rclpy messages (property
tests), the half-pixel convention, CDR serialisation, malformed input, and the skeleton drawer."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from perception_pkg.msgs import (
    MessageFactory,
    MessageFormatError,
    detections_to_person_boxes,
    make_header,
    person_array_to_arrays,
    pose_to_person_array,
)
from perception_pkg.pose import PoseResult
from perception_pkg.pose.coco17 import SKELETON
from perception_pkg.viz.markers import skeleton_markers
from perception_pkg.viz.skeleton import draw_skeletons


def _flavours() -> list[str]:
    out = ["rosbags"]
    try:
        import perception_msgs.msg  # noqa: F401

        out.append("rclpy")
    except ImportError:
        pass
    return out


def _factory(flavour: str) -> tuple[MessageFactory, MessageFactory]:
    if flavour == "rclpy":
        return MessageFactory.rclpy(), MessageFactory.rclpy()
    return MessageFactory.rosbags(), MessageFactory.rosbags()


finite = st.floats(-1e4, 1e4, allow_nan=False, width=32)


@st.composite
def pose_results(draw: st.DrawFn) -> PoseResult:
    n = draw(st.integers(0, 4))
    xy0 = draw(arrays(np.float64, (n, 2), elements=st.floats(-100, 1000, width=32)))
    wh = draw(arrays(np.float64, (n, 2), elements=st.floats(1, 500, width=32)))
    boxes = np.concatenate([xy0, xy0 + wh], axis=1)
    kp = draw(arrays(np.float64, (n, 17, 2), elements=finite))
    sc = draw(arrays(np.float64, (n, 17), elements=st.floats(0, 1, width=32)))
    sig = draw(st.none() | arrays(np.float64, (n, 17), elements=st.floats(0, 100, width=32)))
    ps = draw(arrays(np.float64, (n,), elements=st.floats(0, 1, width=32)))
    return PoseResult(kp, sc, sig, ps, boxes, np.ones(n))


@pytest.mark.parametrize("flavour", _flavours())
@settings(max_examples=60, deadline=None)
@given(result=pose_results(), stamp=st.integers(0, 2**40), frame=st.text(max_size=8))
def test_pose_result_round_trips_through_person_array(
    flavour: str, result: PoseResult, stamp: int, frame: str
) -> None:
    f, types = _factory(flavour)
    msg = pose_to_person_array(result, make_header(types, stamp, frame), f)
    if flavour == "rosbags":  # and through CDR, as written to a bag
        from perception_pkg.bag import get_typestore

        ts = get_typestore()
        msg = ts.deserialize_cdr(ts.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)
    back = person_array_to_arrays(msg)
    assert (back.stamp_ns, back.frame_id, len(back)) == (stamp, frame, len(result))
    # float32 fields: values were drawn as float32, so after the half-pixel shift and back they agree to
    # float32 rounding of the shifted value
    tol = dict(rtol=2e-7, atol=1e-4)
    np.testing.assert_allclose(back.keypoints, result.keypoints, **tol)
    np.testing.assert_allclose(back.keypoint_scores, result.scores, **tol)
    np.testing.assert_allclose(back.scores, result.person_scores, **tol)
    np.testing.assert_allclose(back.boxes, result.boxes, rtol=1e-12, atol=1e-9)  # float64 fields
    if result.sigmas is None:
        assert np.isnan(back.sigmas).all()
    else:
        np.testing.assert_allclose(back.sigmas, result.sigmas, **tol)


def test_keypoint_on_a_pixel_centre_reads_as_that_pixel_in_the_message() -> None:
    f, types = _factory("rosbags")
    kp = np.full((1, 17, 2), 10.5)  # stack coordinates: the centre of pixel (10, 10)
    r = PoseResult(kp, np.ones((1, 17)), None, np.ones(1), np.array([[0.0, 0, 20, 40]]), np.ones(1))
    msg = pose_to_person_array(r, make_header(types, 0, "c"), f)
    p = msg.people[0]
    assert (p.keypoints[0].x, p.keypoints[0].y) == (10.0, 10.0)
    assert (p.bbox.center.position.x, p.bbox.center.position.y, p.bbox.size_x, p.bbox.size_y) == (
        9.5,
        19.5,
        20,
        40,
    )


@pytest.mark.parametrize("flavour", _flavours())
def test_skeleton_markers_draw_only_limbs_with_both_ends_confident(flavour: str) -> None:
    f, types = _factory(flavour)
    kp = np.random.default_rng(0).uniform(0, 400, (2, 17, 2))
    sc = np.ones((2, 17))
    sc[0, 0] = 0.0  # nose of person 0 unsure: its 2 limbs (0-1, 0-2) are not drawn
    kp[1, 16] = np.nan  # right ankle of person 1 missing: limb 16-14 not drawn
    m = skeleton_markers(make_header(types, 5, "cam"), f, kp, sc, threshold=0.5, pixel_size=0.01)
    lines, points = m.markers
    assert (lines.type, points.type, lines.ns, lines.id, points.id) == (5, 8, "pose", 0, 1)
    assert len(lines.points) == 2 * (2 * len(SKELETON) - 3)
    assert len(points.points) == 34 - 2
    first = lines.points[0]
    a = SKELETON[0][0]
    assert np.allclose([first.x, first.y, first.z], [*(kp[0, a] - 0.5) * 0.01, 0.0])
    empty = skeleton_markers(make_header(types, 5, "cam"), f, np.zeros((0, 17, 2)), np.zeros((0, 17)))
    assert [mk.action for mk in empty.markers] == [2, 2]  # DELETE: nothing to show
    if flavour == "rosbags":
        from perception_pkg.bag import get_typestore

        ts = get_typestore()
        assert ts.serialize_cdr(m, m.__msgtype__)


def _det(cls: str, score: float, cx: float, cy: float, w: float, h: float) -> SimpleNamespace:
    hyp = SimpleNamespace(hypothesis=SimpleNamespace(class_id=cls, score=score))
    bbox = SimpleNamespace(
        center=SimpleNamespace(position=SimpleNamespace(x=cx, y=cy), theta=0.0), size_x=w, size_y=h
    )
    return SimpleNamespace(results=[hyp], bbox=bbox)


def test_person_boxes_from_detections_filter_by_class_and_shift_to_stack_coordinates() -> None:
    msg = SimpleNamespace(detections=[_det("person", 0.9, 10, 20, 4, 8), _det("car", 0.8, 0, 0, 1, 1)])
    boxes, scores = detections_to_person_boxes(msg)
    np.testing.assert_allclose(boxes, [[8.5, 16.5, 12.5, 24.5]])
    np.testing.assert_allclose(scores, [0.9])
    assert len(detections_to_person_boxes(msg, "")[0]) == 2
    for bad in (
        _det("person", 0.9, np.nan, 0, 1, 1),
        _det("person", 0.9, 0, 0, -1, 1),
        _det("person", np.inf, 0, 0, 1, 1),
    ):
        with pytest.raises(MessageFormatError):
            detections_to_person_boxes(SimpleNamespace(detections=[bad]))
    with pytest.raises(MessageFormatError):
        detections_to_person_boxes(SimpleNamespace())


def test_person_array_with_wrong_keypoint_count_is_malformed() -> None:
    f, types = _factory("rosbags")
    r = PoseResult(
        np.zeros((1, 17, 2)), np.zeros((1, 17)), None, np.ones(1), np.array([[0.0, 0, 1, 1]]), np.ones(1)
    )
    msg = pose_to_person_array(r, make_header(types, 0, "c"), f)
    msg.people[0].keypoints = msg.people[0].keypoints[:5]
    with pytest.raises(MessageFormatError, match=r"people\[0\]\.keypoints"):
        person_array_to_arrays(msg)


def test_skeleton_drawer_draws_confident_limbs_and_leaves_the_input_alone() -> None:
    img = np.zeros((120, 160, 3), np.uint8)
    kp = np.zeros((1, 17, 2))
    kp[0, :, 0] = np.linspace(20, 140, 17)
    kp[0, :, 1] = 60
    out = draw_skeletons(img, kp, np.ones((1, 17)), np.array([[10.0, 10, 150, 110]]), threshold=0.5)
    assert img.sum() == 0 and out.sum() > 0
    blank = draw_skeletons(img, kp, np.zeros((1, 17)), threshold=0.5)
    assert blank.sum() == 0  # nothing confident enough
    wild = draw_skeletons(img, np.full((1, 17, 2), 1e12), np.ones((1, 17)))  # far outside: no crash
    assert wild.shape == img.shape
