"""Defensive field access shared by the converters.

Messages arrive from two worlds with the same field names: rclpy objects (byte sequences are
``array.array('B')``, float sequences ``array.array('d')``) and rosbags dataclasses (numpy arrays
everywhere). Readers accept both (and plain bytes); writers produce whichever the target class wants.
"""

from __future__ import annotations

import array
from typing import Any

import numpy as np

from perception_pkg.msgs.errors import MessageFormatError

BYTES_EXPECTED = "bytes-like data (bytes, array.array('B') or a uint8 numpy array)"


def get_field(msg: Any, name: str, msg_type: str, label: str | None = None) -> Any:
    """``msg.<name>``; errors name ``label`` (a path like ``roi.width``) when given."""
    try:
        return getattr(msg, name)
    except AttributeError:
        raise MessageFormatError(msg_type, label or name, "the field to be present", "missing") from None


def uint_field(msg: Any, name: str, msg_type: str, *, limit: int = 2**32, label: str | None = None) -> int:
    """An unsigned integer field, range-checked so later size arithmetic cannot go negative or absurd."""
    value = get_field(msg, name, msg_type, label)
    return check_uint(value, label or name, msg_type, limit=limit)


def check_uint(value: Any, name: str, msg_type: str, *, limit: int = 2**32) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise MessageFormatError(msg_type, name, "an unsigned integer", type(value).__name__)
    value = int(value)
    if not 0 <= value < limit:
        raise MessageFormatError(msg_type, name, f"an integer in [0, {limit})", value)
    return value


def bool_field(msg: Any, name: str, msg_type: str, label: str | None = None) -> bool:
    value = get_field(msg, name, msg_type, label)
    if not isinstance(value, (bool, int, np.bool_, np.integer)):
        raise MessageFormatError(msg_type, label or name, "a bool or integer flag", type(value).__name__)
    return bool(value)


def str_field(msg: Any, name: str, msg_type: str, label: str | None = None) -> str:
    value = get_field(msg, name, msg_type, label)
    if not isinstance(value, str):
        raise MessageFormatError(msg_type, label or name, "a string", type(value).__name__)
    return value


def byte_buffer(data: Any, msg_type: str, field: str = "data") -> np.ndarray:
    """A 1-D uint8 view of a message's byte payload; never copies contiguous input."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise MessageFormatError(msg_type, field, BYTES_EXPECTED, f"ndarray of {data.dtype}")
        # no copy for contiguous payloads, which is what deserialisers produce
        return np.ascontiguousarray(data.reshape(-1))
    if isinstance(data, array.array):
        if data.typecode not in ("B", "b"):
            raise MessageFormatError(msg_type, field, BYTES_EXPECTED, f"array.array('{data.typecode}')")
        return np.frombuffer(data, dtype=np.uint8)
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            view = memoryview(data).cast("B")
        except TypeError as exc:
            raise MessageFormatError(msg_type, field, BYTES_EXPECTED, "non-contiguous memoryview") from exc
        return np.frombuffer(view, dtype=np.uint8)
    raise MessageFormatError(msg_type, field, BYTES_EXPECTED, type(data).__name__)


def float_array(value: Any, msg_type: str, field: str, size: int | None = None) -> np.ndarray:
    """A finite float64 1-D array from a float sequence field (numpy, array.array('d'), list)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise MessageFormatError(msg_type, field, "a sequence of floats", type(value).__name__) from exc
    if size is not None and arr.size == size:
        arr = arr.reshape(-1)  # fixed-size fields may arrive as a matrix from hand-made messages
    if arr.ndim != 1 or (size is not None and arr.size != size):
        want = f"{size} values" if size is not None else "a 1-D sequence"
        raise MessageFormatError(msg_type, field, want, arr.size if arr.ndim == 1 else arr.shape)
    if not np.isfinite(arr).all():
        raise MessageFormatError(msg_type, field, "finite values", arr.tolist())
    return arr


def _is_rclpy_class(cls: type) -> bool:
    # rosidl-generated Python classes carry this table; their array setters want array.array
    return hasattr(cls, "_fields_and_field_types")


def pack_bytes(cls: type, data: np.ndarray, *, owned: bool = False) -> Any:
    """The ``data`` value for a message of class ``cls``: a copy of ``data``'s bytes (any dtype).

    A copy unless ``owned`` (the caller made ``data`` and drops it): a message is a snapshot, and
    sharing memory with a caller's array would let a pipeline that reuses its output buffers rewrite
    messages still queued for publishing or writing. rosbags (and other numpy-based) messages get a
    uint8 array; rclpy needs an ``array.array('B')``, filled with ``frombytes`` (one memcpy) because
    assigning bytes runs rclpy's per-element check.
    """
    flat = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if _is_rclpy_class(cls):
        out = array.array("B")
        out.frombytes(flat)
        return out
    return flat.copy() if not owned and np.may_share_memory(flat, data) else flat


def pack_floats(cls: type, values: np.ndarray, *, fixed: bool) -> Any:
    """A float64 sequence field: numpy for fixed-size arrays (both worlds) and for rosbags,
    array.array('d') for rclpy's unbounded sequences."""
    arr = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    if fixed or not _is_rclpy_class(cls):
        return arr.copy()
    out = array.array("d")
    out.frombytes(arr.view(np.uint8))
    return out
