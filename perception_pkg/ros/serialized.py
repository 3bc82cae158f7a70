"""Sensor messages taken serialized: the header read at once from the CDR, the rest decoded on first use.

A node subscribes its sensor inputs with ``raw=True``, so the executor thread only copies the CDR bytes
out of the middleware. :class:`SerializedMessage` reads the header straight from those bytes (a few
microseconds: stamps for the loss estimate and the pipeline latency, frame ids for pairing) and
deserialises the whole message only when something reads another field. A frame that the latest-frame
slot replaces is therefore never deserialised, and the one that is processed is deserialised on the
worker thread, not on the thread that takes messages off the middleware.

Because the node sees the bytes, a message whose CDR does not decode is counted as malformed input
(``MessageFormatError`` with the middleware's reason) instead of being dropped inside rmw with a line
on stderr.
"""

from __future__ import annotations

import struct
from typing import Any

from perception_pkg.msgs import MessageFormatError

_CDR_HEADER = struct.Struct("<iII")  # stamp.sec, stamp.nanosec, frame_id length (little-endian CDR)
_CDR_HEADER_BE = struct.Struct(">iII")


def ros_type_name(cls: type) -> str:
    """``sensor_msgs/msg/Image`` for rclpy's generated ``Image`` class."""
    module = cls.__module__.split(".")
    return f"{module[0]}/msg/{cls.__name__}" if len(module) > 1 else cls.__name__


def has_leading_header(cls: type) -> bool:
    """True when the message's first field is a ``std_msgs/Header`` (then it opens the CDR payload)."""
    fields = getattr(cls, "get_fields_and_field_types", None)
    if fields is None:
        return False
    items = list(fields().items())
    return bool(items) and items[0] == ("header", "std_msgs/Header")


def decode(raw: bytes, cls: type) -> Any:
    """The message of type ``cls`` serialized in ``raw``; MessageFormatError when the CDR is corrupt."""
    from rclpy.serialization import deserialize_message

    try:
        return deserialize_message(raw, cls)
    except Exception as exc:  # rclpy raises RMWError (a RuntimeError) with Fast CDR's reason
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MessageFormatError(ros_type_name(cls), "CDR", "a message that deserialises", reason) from exc


def read_header(raw: bytes, cls: type) -> tuple[int, int, str]:
    """(sec, nanosec, frame_id) of the leading header of serialized ``raw``; MessageFormatError when the
    bytes cannot hold one."""
    name = ros_type_name(cls)
    if len(raw) < 4 + _CDR_HEADER.size + 1:
        raise MessageFormatError(name, "CDR", "at least a serialized header", f"{len(raw)} bytes")
    if raw[0] != 0 or raw[1] not in (0, 1):
        raise MessageFormatError(name, "CDR", "a CDR encapsulation (00 00 or 00 01)", raw[:2].hex())
    layout = _CDR_HEADER if raw[1] == 1 else _CDR_HEADER_BE
    sec, nanosec, n = layout.unpack_from(raw, 4)
    start = 4 + layout.size
    if n < 1 or start + n > len(raw) or raw[start + n - 1] != 0:
        raise MessageFormatError(name, "header.frame_id", "a NUL-terminated CDR string", f"length {n}")
    if nanosec >= 1_000_000_000:
        raise MessageFormatError(name, "header.stamp.nanosec", "< 1e9", nanosec)
    try:
        frame_id = raw[start : start + n - 1].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageFormatError(name, "header.frame_id", "UTF-8 text", str(exc)) from exc
    return sec, nanosec, frame_id


class SerializedMessage:
    """A message as CDR bytes: ``header`` (and ``stamp_ns``) from the bytes, any other attribute from
    the message deserialised on first use (then kept). Reads like the message it holds."""

    __slots__ = ("_msg", "header", "msg_type", "raw", "stamp_ns")

    def __init__(self, raw: bytes, msg_type: type) -> None:
        from std_msgs.msg import Header

        self.raw = raw
        self.msg_type = msg_type
        self._msg: Any = None
        sec, nanosec, frame_id = read_header(raw, msg_type)
        self.header = Header(frame_id=frame_id)
        self.header.stamp.sec, self.header.stamp.nanosec = sec, nanosec
        self.stamp_ns = sec * 1_000_000_000 + nanosec

    @property
    def decoded(self) -> bool:
        return self._msg is not None

    def message(self) -> Any:
        """The deserialised message (MessageFormatError when its CDR is corrupt)."""
        if self._msg is None:
            self._msg = decode(self.raw, self.msg_type)
            self.raw = b""  # the message holds the data now
        return self._msg

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.message(), name)

    def __repr__(self) -> str:
        state = "decoded" if self._msg is not None else f"{len(self.raw)} bytes"
        return f"SerializedMessage({ros_type_name(self.msg_type)}, stamp {self.stamp_ns}, {state})"
