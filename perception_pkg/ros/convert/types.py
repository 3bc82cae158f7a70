"""Which message classes to build: rclpy's generated ones or rosbags' dataclasses.

Writers take a ``MsgTypes`` instead of importing message packages, so the same code builds messages for
a live node (``MsgTypes.rclpy()``) and for a bag (``MsgTypes.rosbags()``) without importing rclpy here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from perception_pkg.ros.convert._common import check_uint, get_field
from perception_pkg.ros.convert.errors import MessageFormatError

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class MsgTypes:
    """Message classes with ROS 2 field names; either flavour constructs with keyword arguments."""

    Header: type
    Time: type
    Image: type
    CompressedImage: type
    CameraInfo: type
    PointCloud2: type
    PointField: type
    RegionOfInterest: type

    @classmethod
    def rclpy(cls) -> MsgTypes:
        """rclpy's generated classes (needs a ROS 2 install or the ros-jazzy-* wheels)."""
        from builtin_interfaces.msg import Time
        from sensor_msgs.msg import (
            CameraInfo,
            CompressedImage,
            Image,
            PointCloud2,
            PointField,
            RegionOfInterest,
        )
        from std_msgs.msg import Header

        return cls(
            Header=Header,
            Time=Time,
            Image=Image,
            CompressedImage=CompressedImage,
            CameraInfo=CameraInfo,
            PointCloud2=PointCloud2,
            PointField=PointField,
            RegionOfInterest=RegionOfInterest,
        )

    @classmethod
    def rosbags(cls, typestore: Any = None) -> MsgTypes:
        """rosbags dataclasses from ``typestore`` (default: the project's Jazzy typestore)."""
        if typestore is None:
            from perception_pkg.bag import get_typestore

            typestore = get_typestore()
        t = typestore.types
        return cls(
            Header=t["std_msgs/msg/Header"],
            Time=t["builtin_interfaces/msg/Time"],
            Image=t["sensor_msgs/msg/Image"],
            CompressedImage=t["sensor_msgs/msg/CompressedImage"],
            CameraInfo=t["sensor_msgs/msg/CameraInfo"],
            PointCloud2=t["sensor_msgs/msg/PointCloud2"],
            PointField=t["sensor_msgs/msg/PointField"],
            RegionOfInterest=t["sensor_msgs/msg/RegionOfInterest"],
        )


def make_header(types: MsgTypes, stamp_ns: int, frame_id: str) -> Any:
    """A ``std_msgs/Header`` stamped ``stamp_ns`` nanoseconds since the epoch (int32 sec + nanosec)."""
    if isinstance(stamp_ns, (bool, np.bool_)) or not hasattr(stamp_ns, "__index__"):
        raise MessageFormatError(
            "std_msgs/msg/Header", "stamp", "an integer count of nanoseconds", type(stamp_ns).__name__
        )
    stamp_ns = int(stamp_ns.__index__())  # numpy integers too
    sec, nanosec = divmod(stamp_ns, _NS_PER_S)
    if not -(2**31) <= sec < 2**31:
        raise MessageFormatError("std_msgs/msg/Header", "stamp", "seconds within int32", stamp_ns)
    if not isinstance(frame_id, str):
        raise MessageFormatError("std_msgs/msg/Header", "frame_id", "a string", type(frame_id).__name__)
    return types.Header(stamp=types.Time(sec=int(sec), nanosec=int(nanosec)), frame_id=frame_id)


def stamp_to_ns(header_or_stamp: Any) -> int:
    """Nanoseconds since the epoch from a Header or a builtin_interfaces/Time."""
    stamp = getattr(header_or_stamp, "stamp", header_or_stamp)
    sec = get_field(stamp, "sec", "builtin_interfaces/msg/Time")
    if isinstance(sec, bool) or not hasattr(sec, "__index__"):
        raise MessageFormatError("builtin_interfaces/msg/Time", "sec", "an integer", type(sec).__name__)
    nanosec = check_uint(
        get_field(stamp, "nanosec", "builtin_interfaces/msg/Time"), "nanosec", "builtin_interfaces/msg/Time"
    )
    return int(sec.__index__()) * _NS_PER_S + nanosec
