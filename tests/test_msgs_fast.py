"""Positional message constructors (msgs/fast.py) and the builders that use them: every message equals the
keyword-built one it replaced (rclpy ``==`` and a CDR round trip; rosbags byte-identical CDR), on the
shipped models' real results and on edge cases (no rows, rows without a 3D box, markers to delete)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from perception_pkg.bag import get_typestore
from perception_pkg.decoders.types import Detections
from perception_pkg.detection import DetectionResult
from perception_pkg.msgs import MessageFactory, make_header
from perception_pkg.msgs.detections import detection2d_array, detection3d_array
from perception_pkg.msgs.factory import SHORT_NAMES
from perception_pkg.msgs.fast import positional
from perception_pkg.msgs.people import people_to_person_array
from perception_pkg.viz.markers import detection_markers, skeleton_markers
from tests.helpers import hot_path_before as before

STORE = get_typestore()


def _flavours() -> list:
    out = [pytest.param("rosbags", id="rosbags")]
    try:
        import perception_msgs.msg  # noqa: F401
        import vision_msgs.msg  # noqa: F401

        out.append(pytest.param("rclpy", id="rclpy"))
    except ImportError:  # no ROS interfaces here: the rosbags flavour still runs
        pass
    return out


FLAVOURS = _flavours()


def _types(flavour: str) -> MessageFactory:
    return MessageFactory.rclpy() if flavour == "rclpy" else MessageFactory.rosbags(STORE)


def _same_fields(a, b) -> bool:
    """rclpy messages compared field by field, NaN equal to NaN (``==`` on messages says NaN != NaN)."""
    if hasattr(type(a), "get_fields_and_field_types"):
        return type(a) is type(b) and all(
            _same_fields(getattr(a, f), getattr(b, f)) for f in type(a).get_fields_and_field_types()
        )
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same_fields, a, b))
    if isinstance(a, float):
        return type(b) is float and (a == b or (a != a and b != b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    return type(a) is type(b) and a == b


def _assert_same(types: MessageFactory, got, ref) -> None:
    if types.is_rclpy:
        from rclpy.serialization import deserialize_message, serialize_message

        assert _same_fields(got, ref)
        # what goes on the wire (rclpy leaves CDR padding bytes unset, so compare what comes back)
        cls = type(ref)
        wire = [deserialize_message(serialize_message(m), cls) for m in (got, ref)]
        assert _same_fields(*wire)
    else:
        msgtype = ref.__msgtype__
        assert bytes(STORE.serialize_cdr(got, msgtype)) == bytes(STORE.serialize_cdr(ref, msgtype))


@pytest.mark.skipif(len(FLAVOURS) < 2, reason="rclpy message classes not installed")
def test_positional_rclpy_messages_equal_keyword_built_ones_for_every_class() -> None:
    """Each class the builders use, filled with the values of a default instance: the same message as
    the generated constructor makes, the same field-check flag, and it serialises."""
    from rclpy.serialization import deserialize_message, serialize_message

    types = MessageFactory.rclpy()
    for short in SHORT_NAMES:
        cls = types.cls(short)
        ref = cls()
        fields = list(cls.get_fields_and_field_types())
        got = positional(cls)(*(getattr(ref, f) for f in fields))
        assert type(got) is cls and got == ref and _same_fields(got, ref), short
        assert got._check_fields == ref._check_fields, short
        assert deserialize_message(serialize_message(got), cls) == ref, short


def test_rosbags_classes_are_their_own_positional_constructors() -> None:
    """rosbags dataclasses take their fields positionally in definition order already."""
    types = MessageFactory.rosbags(STORE)
    point = types.cls("Point")
    assert positional(point) is point
    assert [f.name for f in dataclasses.fields(point)][:3] == ["x", "y", "z"]


def test_a_class_without_its_slots_falls_back_to_keywords() -> None:
    class Unusual:  # a generated-looking class whose storage is not the '_' + field slots
        def __init__(self, **kw: float) -> None:
            self.kw = kw

        @classmethod
        def get_fields_and_field_types(cls) -> dict[str, str]:
            return {"x": "double", "y": "double"}

    made = positional(Unusual)(1.0, 2.0)
    assert isinstance(made, Unusual) and made.kw == {"x": 1.0, "y": 2.0}


def _results():
    """The shipped detector's real result on a simulator frame (12 objects), when it can run, and two
    edge cases: no rows at all, and rows of which one has no 3D box and one class is out of range."""
    out = []
    try:
        from tests.helpers.model_outputs import detector, detector_frames

        frame = detector_frames()[0]
        out.append(detector()(frame.image, frame.camera))
    except pytest.skip.Exception:
        pass
    out.append(DetectionResult(Detections.empty(), ("person", "car"), np.zeros((0, 7))))
    boxes3d = np.array(
        [[1.0, 1.6, 10.0, 1.5, 1.7, 4.0, 0.3], [np.nan] * 7, [-2.0, 1.5, 20.0, 1.7, 0.6, 0.5, -2.0]]
    )
    dets = Detections(
        np.array([[10.0, 20.0, 50.0, 80.0], [0.0, 0.0, 5.5, 7.25], [300.0, 100.0, 320.5, 160.0]]),
        np.array([0.9, 0.5, 0.31]),
        np.array([1, 0, 7]),
    )
    out.append(DetectionResult(dets, ("person", "car"), boxes3d, scores3d=np.array([0.8, 0.1, 0.2])))
    out.append(DetectionResult(dets, ("person", "car")))  # a 2D-only model
    return out


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_detection_builders_equal_the_keyword_built_messages(flavour: str) -> None:
    types = _types(flavour)
    header = make_header(types, 1_700_000_000_123_456_789, "camera_optical")
    results = _results()
    for result in results:
        _assert_same(
            types, detection2d_array(result, header, types), before.detection2d_array(result, header, types)
        )
        _assert_same(
            types, detection3d_array(result, header, types), before.detection3d_array(result, header, types)
        )
        for previous in (0, 15):
            _assert_same(
                types,
                detection_markers(result, header, types, previous_count=previous),
                before.detection_markers(result, header, types, previous_count=previous),
            )


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_people_builders_equal_the_keyword_built_messages(flavour: str) -> None:
    types = _types(flavour)
    header = make_header(types, 1_700_000_000_123_456_789, "camera_optical")
    rng = np.random.default_rng(3)
    for n, sigmas in ((5, True), (2, False), (0, False)):
        boxes = np.sort(rng.uniform(0, 600, (n, 2, 2)), axis=1).reshape(n, 4)[:, [0, 2, 1, 3]]
        kp = rng.uniform(-10, 650, (n, 17, 2))
        kp[:, 3] = np.nan if n else kp[:, 3]  # a missing keypoint
        scores = rng.uniform(0, 1, (n, 17)).astype(np.float32)
        sig = rng.uniform(0.5, 4, (n, 17)) if sigmas else None
        person = rng.uniform(0, 1, n)
        _assert_same(
            types,
            people_to_person_array(header, types, boxes, person, kp, scores, sig),
            before.people_to_person_array(header, types, boxes, person, kp, scores, sig),
        )
        _assert_same(
            types,
            skeleton_markers(header, types, kp, scores, threshold=0.3),
            before.skeleton_markers(header, types, kp, scores, threshold=0.3),
        )
