"""Every message type we publish (ours, the vision_msgs subset, sensor_msgs) crosses processes intact."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from helpers.ros_harness import child_process, output_of, ros_node, spin_until

pytestmark = pytest.mark.ros
CHILD = Path(__file__).parent / "ros_children" / "publish_each_type.py"


def _fields_equal(a, b) -> bool:
    """Structural equality that treats NaN == NaN (sigma is NaN when the decoder gives none) and compares
    floats at float32 precision (the sender's Python floats are rounded on the wire for float32 fields)."""
    if hasattr(a, "get_fields_and_field_types"):
        return all(_fields_equal(getattr(a, f), getattr(b, f)) for f in a.get_fields_and_field_types())
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-30) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, str | bytes | int | bool) or a is None:
        return a == b
    a, b = list(a), list(b)
    return len(a) == len(b) and all(_fields_equal(x, y) for x, y in zip(a, b, strict=True))


def test_each_message_type_round_trips_between_two_processes(ros_domain: int) -> None:
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from ros_children.sample_messages import build

    expected = build()
    received: dict[str, object] = {}
    with ros_node("receive_each_type") as node, child_process([str(CHILD)]) as child:
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        for topic, msg in expected.items():
            node.create_subscription(type(msg), topic, lambda m, t=topic: received.setdefault(t, m), qos)
        ok = spin_until(node, lambda: len(received) == len(expected) or child.poll() is not None, 30)
        assert ok and len(received) == len(expected), (
            f"missing {sorted(set(expected) - set(received))}; child said: {output_of(child)}"
        )
    for topic, msg in expected.items():
        assert _fields_equal(received[topic], msg), topic
    people = received["/types/people"]
    assert len(people.people[0].keypoints) == 17
    assert math.isnan(people.people[0].keypoints[1].sigma)
    assert received["/types/detections2d"].detections[0].bbox.center.position.x == 320.5
    assert received["/types/detections3d"].detections[0].results[0].hypothesis.class_id == "car"
