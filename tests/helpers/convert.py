"""Builders shared by the tests of perception_pkg.msgs.

Messages are built here field by field, independently of the writers under test, so that reader tests
do not merely check that the converters agree with themselves.
"""

from __future__ import annotations

import array
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from perception_pkg.msgs import MessageFactory, make_header
from perception_pkg.paths import assets_dir

ROSBAGS = MessageFactory.rosbags()


def rclpy_types() -> MessageFactory:
    """rclpy's message classes, or skip the calling test."""
    pytest.importorskip("rclpy", reason="rclpy not installed (scripts/bootstrap.sh installs it)")
    pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs Python package not installed")
    return MessageFactory.rclpy()


def flavour(name: str) -> MessageFactory:
    return ROSBAGS if name == "rosbags" else rclpy_types()


FLAVOURS = ("rosbags", "rclpy")


def is_rclpy(types: MessageFactory) -> bool:
    return hasattr(types.Image, "_fields_and_field_types")


def payload(types: MessageFactory, raw: bytes) -> Any:
    """The ``data`` value each flavour carries: array.array('B') for rclpy, uint8 ndarray for rosbags."""
    if is_rclpy(types):
        return array.array("B", raw)
    return np.frombuffer(raw, dtype=np.uint8).copy()


def data_buffer(msg: Any) -> np.ndarray:
    """msg.data as a uint8 array over the same memory (array.array and ndarray alike)."""
    return np.frombuffer(msg.data, dtype=np.uint8)


def header(types: MessageFactory, stamp_ns: int = 1_600_000_000_123_456_789, frame: str = "sensor") -> Any:
    return make_header(types, stamp_ns, frame)


def raw_image(
    types: MessageFactory,
    raw: bytes,
    *,
    height: int,
    width: int,
    encoding: str,
    step: int,
    is_bigendian: int = 0,
) -> Any:
    return types.Image(
        header=header(types),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=is_bigendian,
        step=step,
        data=payload(types, raw),
    )


def padded_rows(pixels: np.ndarray, step: int, fill: int = 0xEE) -> bytes:
    """Bytes of an HxW[xC] array with each row padded to ``step`` bytes (padding is ``fill``)."""
    height = pixels.shape[0]
    rows = np.ascontiguousarray(pixels).reshape(height, -1).view(np.uint8)
    out = np.full((height, step), fill, dtype=np.uint8)
    out[:, : rows.shape[1]] = rows
    return out.tobytes()


# PointField datatype -> struct format character
STRUCT_CODES = {1: "b", 2: "B", 3: "h", 4: "H", 5: "i", 6: "I", 7: "f", 8: "d"}
ITEM_SIZES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 8: 8}


def pack_cloud_reference(
    fields: list[tuple[str, int, int, int]],
    values: dict[str, list],
    *,
    height: int,
    width: int,
    point_step: int,
    row_step: int,
    big_endian: bool,
    fill: int = 0xAB,
) -> bytes:
    """Serialise points the slow, obvious way (struct per value): the oracle for the readers.

    ``fields``: (name, offset, datatype, count); ``values[name][i]`` is point i's value (a list of
    ``count`` values). Padding bytes are ``fill`` so that reading them by mistake shows.
    """
    order = ">" if big_endian else "<"
    buf = bytearray([fill]) * (row_step * height)
    for i in range(height * width):
        base = (i // width) * row_step + (i % width) * point_step
        for name, offset, datatype, count in fields:
            struct.pack_into(f"{order}{count}{STRUCT_CODES[datatype]}", buf, base + offset, *values[name][i])
        # nothing else: bytes between fields stay `fill`
    return bytes(buf)


def raw_cloud(
    types: MessageFactory,
    raw: bytes,
    fields: list[tuple[str, int, int, int]],
    *,
    height: int,
    width: int,
    point_step: int,
    row_step: int,
    big_endian: bool = False,
    is_dense: bool = True,
) -> Any:
    pfs = [types.PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in fields]
    return types.PointCloud2(
        header=header(types),
        height=height,
        width=width,
        fields=pfs,
        is_bigendian=big_endian,
        point_step=point_step,
        row_step=row_step,
        data=payload(types, raw),
        is_dense=is_dense,
    )


LUMINAR_FIELDS = [
    ("x", 0, 7, 1),
    ("y", 4, 7, 1),
    ("z", 8, 7, 1),
    ("intensity", 16, 7, 1),
    ("time_sec", 20, 6, 1),
    ("time_nsec", 24, 6, 1),
    ("laser_id", 28, 4, 1),
]


LUMINAR_DTYPE = np.dtype(
    {
        "names": [f[0] for f in LUMINAR_FIELDS],
        "formats": ["<f4", "<f4", "<f4", "<f4", "<u4", "<u4", "<u2"],
        "offsets": [f[1] for f in LUMINAR_FIELDS],
        "itemsize": 32,
    }
)


def luminar_like_structured(n: int, seed: int = 0, nan_fraction: float = 0.0) -> np.ndarray:
    """Random points in the real Luminar driver's 32-byte layout (the shared bag's PointCloud2)."""
    rng = np.random.default_rng(seed)
    pts = np.zeros(n, dtype=LUMINAR_DTYPE)
    pts["x"] = rng.uniform(0, 200, n)
    pts["y"] = rng.uniform(-50, 50, n)
    pts["z"] = rng.uniform(-3, 10, n)
    pts["intensity"] = rng.uniform(0, 1, n)
    pts["time_sec"] = 1_604_515_190
    pts["time_nsec"] = rng.integers(0, 10**9, n)
    pts["laser_id"] = rng.integers(0, 640, n)
    if nan_fraction:
        pts["x"][rng.random(n) < nan_fraction] = np.nan
    return pts


def asset(relpath: str) -> Path:
    """A file under the shared real-data assets, or skip the test saying what is missing."""
    root = assets_dir()
    if root is None:
        pytest.skip("real sample assets not found: set PERCEPTION_ASSETS or place them in ../shared/assets")
    path = root / relpath
    if not path.exists():
        pytest.skip(f"asset {relpath} not found under {root}")
    return path
