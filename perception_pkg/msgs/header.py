"""Headers and stamps: ``std_msgs/Header`` from nanoseconds and back, range-checked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from perception_pkg.msgs._common import check_uint, get_field
from perception_pkg.msgs.errors import MessageFormatError

if TYPE_CHECKING:
    from perception_pkg.msgs.factory import MessageFactory

_NS_PER_S = 1_000_000_000


def make_header(types: MessageFactory, stamp_ns: int, frame_id: str) -> Any:
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
