"""MessageFormatError, MessageFactory, headers and stamps; the convert package must not import rclpy."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
from helpers.convert import FLAVOURS, ROSBAGS, flavour

from perception_pkg.msgs import MessageFactory, MessageFormatError, make_header, stamp_to_ns


def test_message_format_error_carries_and_prints_the_field() -> None:
    err = MessageFormatError("sensor_msgs/msg/Image", "step", ">= 1920", 1000, "rgb8 has 3 bytes per pixel")
    assert isinstance(err, ValueError)
    assert (err.msg_type, err.field) == ("sensor_msgs/msg/Image", "step")
    assert (err.expected, err.actual) == (">= 1920", 1000)
    assert str(err) == "sensor_msgs/msg/Image.step: expected >= 1920, got 1000 (rgb8 has 3 bytes per pixel)"
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.field == "step" and again.actual == 1000


def test_long_actual_values_are_shortened_in_the_message() -> None:
    err = MessageFormatError("T", "data", "bytes", "x" * 10_000)
    assert len(str(err)) < 200 and err.actual == "x" * 10_000


def test_msg_types_rosbags_classes() -> None:
    types = MessageFactory.rosbags()
    assert types.Image.__msgtype__ == "sensor_msgs/msg/Image"
    assert types.PointField.__msgtype__ == "sensor_msgs/msg/PointField"
    assert types.Time.__msgtype__ == "builtin_interfaces/msg/Time"
    assert types == MessageFactory.rosbags()  # frozen dataclass: comparable, hashable
    assert hash(types) == hash(MessageFactory.rosbags())


def test_msg_types_rclpy_classes() -> None:
    types = flavour("rclpy")
    from sensor_msgs.msg import Image, PointCloud2

    assert types.Image is Image and types.PointCloud2 is PointCloud2


@pytest.mark.parametrize("name", FLAVOURS)
@pytest.mark.parametrize(
    "stamp_ns",
    [
        0,
        1,
        999_999_999,
        1_000_000_000,
        1_604_515_190_231_374_463,
        -1,
        -1_500_000_001,
        (2**31 - 1) * 10**9 + 999_999_999,
    ],
)
def test_make_header_and_stamp_to_ns_round_trip(name: str, stamp_ns: int) -> None:
    types = flavour(name)
    hdr = make_header(types, stamp_ns, "base_link")
    assert hdr.frame_id == "base_link"
    assert 0 <= hdr.stamp.nanosec < 10**9
    assert stamp_to_ns(hdr) == stamp_ns
    assert stamp_to_ns(hdr.stamp) == stamp_ns


def test_make_header_accepts_numpy_integers() -> None:
    assert stamp_to_ns(make_header(ROSBAGS, np.int64(5_000_000_001), "x")) == 5_000_000_001


@pytest.mark.parametrize(
    ("stamp", "frame"), [(2**31 * 10**9, "x"), (1.5, "x"), ("1", "x"), (True, "x"), (0, None)]
)
def test_make_header_rejects_bad_input(stamp: object, frame: object) -> None:
    with pytest.raises(MessageFormatError):
        make_header(ROSBAGS, stamp, frame)  # type: ignore[arg-type]


def test_stamp_to_ns_rejects_non_stamps() -> None:
    with pytest.raises(MessageFormatError, match="sec"):
        stamp_to_ns(object())
    with pytest.raises(MessageFormatError, match="nanosec"):
        stamp_to_ns(ROSBAGS.Time(sec=1, nanosec=-5))


def test_convert_package_imports_without_rclpy_or_message_packages() -> None:
    code = (
        "import sys, perception_pkg.msgs as c\n"
        "c.MessageFactory.rosbags()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('rclpy', 'sensor_msgs', 'std_msgs', 'builtin_interfaces', 'rosidl_runtime_py'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
