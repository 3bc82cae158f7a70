"""sensor_msgs/Image <-> numpy.

Reading returns a view of the message buffer whenever the bytes already have the layout numpy needs:
row padding (``step`` larger than a row) becomes a row stride, not a copy. Only data in the other byte
order (byteswapped, so results are always in native order) or unaligned multi-byte pixels are copied.
A view of a deserialised or received message may be read-only; pass ``copy=True`` (or copy later)
before writing into it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import cv2
import numpy as np

from perception_pkg.msgs._common import (
    bool_field,
    byte_buffer,
    get_field,
    pack_bytes,
    str_field,
    uint_field,
)
from perception_pkg.msgs.errors import MessageFormatError
from perception_pkg.msgs.factory import MessageFactory

_IMAGE = "sensor_msgs/msg/Image"


@dataclass(frozen=True)
class EncodingInfo:
    """How an encoding lays out one pixel: ``channels`` values of ``dtype`` each.

    Packed 4:2:2 YUV (uyvy, yuyv) carries two bytes per pixel, exposed as HxWx2 uint8, which is the
    array shape OpenCV's YUV422 colour conversions take.
    """

    channels: int
    dtype: np.dtype

    @property
    def bytes_per_pixel(self) -> int:
        return self.channels * self.dtype.itemsize


def _build_encodings() -> dict[str, EncodingInfo]:
    u8, u16 = np.dtype(np.uint8), np.dtype(np.uint16)
    table = {
        "rgb8": EncodingInfo(3, u8),
        "bgr8": EncodingInfo(3, u8),
        "rgba8": EncodingInfo(4, u8),
        "bgra8": EncodingInfo(4, u8),
        "rgb16": EncodingInfo(3, u16),
        "bgr16": EncodingInfo(3, u16),
        "rgba16": EncodingInfo(4, u16),
        "bgra16": EncodingInfo(4, u16),
        "mono8": EncodingInfo(1, u8),
        "mono16": EncodingInfo(1, u16),
        # ROS spells UYVY "yuv422" and YUYV "yuv422_yuy2" (sensor_msgs/image_encodings.hpp)
        "yuv422": EncodingInfo(2, u8),
        "uyvy": EncodingInfo(2, u8),
        "yuyv": EncodingInfo(2, u8),
        "yuv422_yuy2": EncodingInfo(2, u8),
    }
    depths = {"8U": "u1", "8S": "i1", "16U": "u2", "16S": "i2", "32S": "i4", "32F": "f4", "64F": "f8"}
    for depth, code in depths.items():
        for channels in (1, 2, 3, 4):
            table[f"{depth}C{channels}"] = EncodingInfo(channels, np.dtype(code))
    return table


ENCODINGS: MappingProxyType[str, EncodingInfo] = MappingProxyType(_build_encodings())
"""Supported ``Image.encoding`` values -> (channels, dtype). Bayer patterns are not supported."""

# encoding -> (channel layout, 16-bit?) for the colour conversions; generic nUCm follow OpenCV's BGR order
_COLOUR_LAYOUT: dict[str, tuple[str, bool]] = {
    "bgr8": ("bgr", False), "8UC3": ("bgr", False), "rgb8": ("rgb", False),
    "bgra8": ("bgra", False), "8UC4": ("bgra", False), "rgba8": ("rgba", False),
    "mono8": ("gray", False), "8UC1": ("gray", False),
    "bgr16": ("bgr", True), "16UC3": ("bgr", True), "rgb16": ("rgb", True),
    "bgra16": ("bgra", True), "16UC4": ("bgra", True), "rgba16": ("rgba", True),
    "mono16": ("gray", True), "16UC1": ("gray", True),
    "yuv422": ("uyvy", False), "uyvy": ("uyvy", False),
    "yuyv": ("yuy2", False), "yuv422_yuy2": ("yuy2", False),
}  # fmt: skip

# (layout, target) -> cv2 conversion code; None: already in the target order
_CV_CODES: dict[tuple[str, str], int | None] = {
    ("bgr", "bgr"): None, ("bgr", "rgb"): cv2.COLOR_BGR2RGB,
    ("rgb", "bgr"): cv2.COLOR_RGB2BGR, ("rgb", "rgb"): None,
    ("bgra", "bgr"): cv2.COLOR_BGRA2BGR, ("bgra", "rgb"): cv2.COLOR_BGRA2RGB,
    ("rgba", "bgr"): cv2.COLOR_RGBA2BGR, ("rgba", "rgb"): cv2.COLOR_RGBA2RGB,
    ("gray", "bgr"): cv2.COLOR_GRAY2BGR, ("gray", "rgb"): cv2.COLOR_GRAY2RGB,
    ("uyvy", "bgr"): cv2.COLOR_YUV2BGR_UYVY, ("uyvy", "rgb"): cv2.COLOR_YUV2RGB_UYVY,
    ("yuy2", "bgr"): cv2.COLOR_YUV2BGR_YUY2, ("yuy2", "rgb"): cv2.COLOR_YUV2RGB_YUY2,
}  # fmt: skip

_PACKED_YUV = frozenset({"yuv422", "uyvy", "yuyv", "yuv422_yuy2"})


def _encoding_info(encoding: Any) -> EncodingInfo:
    info = ENCODINGS.get(encoding) if isinstance(encoding, str) else None
    if info is None:
        raise MessageFormatError(_IMAGE, "encoding", "one of image.ENCODINGS", encoding)
    return info


def image_to_array(msg: Any, *, copy: bool = False) -> np.ndarray:
    """Pixels of a ``sensor_msgs/Image`` as HxW (one channel) or HxWxC, in the encoding's dtype.

    A view of ``msg.data`` unless ``copy`` is true, the data is in the other byte order (then a
    byteswapped copy), or multi-byte pixels would sit at unaligned addresses (an odd ``step`` for a
    16-bit image; then an aligned copy). Raises MessageFormatError when the fields do not describe
    the data.
    """
    encoding = str_field(msg, "encoding", _IMAGE)
    info = _encoding_info(encoding)
    height = uint_field(msg, "height", _IMAGE)
    width = uint_field(msg, "width", _IMAGE)
    step = uint_field(msg, "step", _IMAGE)
    big_endian = bool_field(msg, "is_bigendian", _IMAGE)
    if height == 0 or width == 0:
        raise MessageFormatError(_IMAGE, "height" if height == 0 else "width", "a positive size", 0)
    if encoding in _PACKED_YUV and width % 2:
        raise MessageFormatError(_IMAGE, "width", "an even width for 4:2:2 YUV", width)
    row_bytes = width * info.bytes_per_pixel
    if step < row_bytes:
        raise MessageFormatError(
            _IMAGE,
            "step",
            f">= width * {info.bytes_per_pixel} = {row_bytes} bytes",
            step,
            f"{encoding} has {info.bytes_per_pixel} bytes per pixel",
        )
    buf = byte_buffer(get_field(msg, "data", _IMAGE), _IMAGE)
    if buf.size < step * height:
        raise MessageFormatError(_IMAGE, "data", f">= step * height = {step * height} bytes", buf.size)

    dtype = info.dtype.newbyteorder(">" if big_endian else "<") if info.dtype.itemsize > 1 else info.dtype
    item = dtype.itemsize
    shape: tuple[int, ...] = (height, width, info.channels)
    strides: tuple[int, ...] = (step, info.bytes_per_pixel, item)
    if info.channels == 1:
        shape, strides = shape[:2], strides[:2]
    # rows at `step` apart: padding is skipped by the stride instead of a copy
    out = np.ndarray(shape, dtype=dtype, buffer=buf, offset=0, strides=strides)
    if not dtype.isnative:
        return out.astype(dtype.newbyteorder("="))
    if copy or not out.flags.aligned:
        # an odd step leaves multi-byte rows off their element boundary; OpenCV then reads wrong pixels
        # without any error (seen with cv2 5.0 on mono16), so such images are copied into alignment
        return out.copy()
    return out


def _to_8bit(arr: np.ndarray) -> np.ndarray:
    # full range onto full range, rounded: v * 255 / 65535 (so 65535 -> 255, 257 -> 1)
    return cv2.convertScaleAbs(arr, alpha=255.0 / 65535.0)


def _to_colour(msg: Any, target: str, copy: bool) -> np.ndarray:
    encoding = str_field(msg, "encoding", _IMAGE)
    layout = _COLOUR_LAYOUT.get(encoding)
    if layout is None:
        _encoding_info(encoding)  # unknown names get the same error as everywhere else
        raise MessageFormatError(
            _IMAGE,
            "encoding",
            "a colour, mono or YUV encoding (8 or 16 bit unsigned)",
            encoding,
            "no defined mapping to 8-bit colour",
        )
    arr = image_to_array(msg)
    kind, wide = layout
    if wide:
        arr = _to_8bit(arr)
    code = _CV_CODES[(kind, target)]
    if code is None:
        return arr.copy() if copy else arr
    try:
        return cv2.cvtColor(arr, code)
    except cv2.error as exc:  # pragma: no cover - the checks above leave OpenCV nothing to reject
        raise MessageFormatError(
            _IMAGE, "data", f"an image OpenCV can convert to {target}", encoding, str(exc)
        ) from exc


def image_to_bgr(msg: Any, *, copy: bool = False) -> np.ndarray:
    """HxWx3 uint8 in BGR order from any colour, mono or 4:2:2 YUV encoding.

    Mono is replicated to three channels, alpha dropped, YUV converted by OpenCV (BT.601 as OpenCV
    implements it), and 16-bit values scaled linearly to 8 bits (v * 255 / 65535, rounded). For
    bgr8/8UC3 the result is a view of the message (see ``image_to_array``) unless ``copy`` is true.
    Float and signed encodings have no defined display range and raise MessageFormatError.
    """
    return _to_colour(msg, "bgr", copy)


def image_to_rgb(msg: Any, *, copy: bool = False) -> np.ndarray:
    """As ``image_to_bgr`` but in RGB order (a view for rgb8)."""
    return _to_colour(msg, "rgb", copy)


def array_to_image(array: np.ndarray, encoding: str, header: Any, types: MessageFactory) -> Any:
    """A ``sensor_msgs/Image`` of class ``types.Image`` holding ``array`` (HxW, HxWx1 or HxWxC).

    The dtype must be the encoding's (any byte order: a big-endian array is sent with is_bigendian=1).
    Rows are packed (step = width * bytes per pixel). The message owns a copy of the pixels.
    """
    info = _encoding_info(encoding)
    arr = np.asarray(array)
    if arr.dtype.newbyteorder("=") != info.dtype:
        raise MessageFormatError(_IMAGE, "data", f"an array of {info.dtype} for {encoding}", str(arr.dtype))
    channels_ok = (arr.ndim == 2 and info.channels == 1) or (arr.ndim == 3 and arr.shape[2] == info.channels)
    if not channels_ok:
        want = "HxW or HxWx1" if info.channels == 1 else f"HxWx{info.channels}"
        raise MessageFormatError(_IMAGE, "data", f"shape {want} for {encoding}", arr.shape)
    height, width = arr.shape[:2]
    if height == 0 or width == 0:
        raise MessageFormatError(_IMAGE, "data", "a non-empty image", arr.shape)
    if encoding in _PACKED_YUV and width % 2:
        raise MessageFormatError(_IMAGE, "width", "an even width for 4:2:2 YUV", width)
    order = arr.dtype.byteorder
    big_endian = arr.dtype.itemsize > 1 and (order == ">" or (order == "=" and sys.byteorder == "big"))
    return types.Image(
        header=header,
        height=int(height),
        width=int(width),
        encoding=encoding,
        is_bigendian=int(big_endian),
        step=int(width * info.bytes_per_pixel),
        data=pack_bytes(types.Image, arr),
    )
