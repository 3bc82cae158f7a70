"""sensor_msgs/CompressedImage <-> numpy: image_transport format strings, codecs, depth, errors."""

from __future__ import annotations

import struct
from typing import Any

import cv2
import numpy as np
import pytest
from helpers.convert import FLAVOURS, ROSBAGS, asset, flavour, header, payload

from perception_pkg.msgs import (
    CompressedFormat,
    MessageFormatError,
    array_to_compressed,
    compressed_to_array,
    parse_format,
)
from perception_pkg.msgs.compressed import MAX_PIXELS


def _gradient() -> np.ndarray:
    """A smooth BGR image (JPEG reproduces it closely), 48 x 64, distinct per channel."""
    yy, xx = np.mgrid[0:48, 0:64]
    return np.stack([xx * 4, yy * 5, 255 - xx * 2], axis=2).astype(np.uint8)


def _compressed(fmt: str, raw: bytes) -> Any:
    return ROSBAGS.CompressedImage(header=header(ROSBAGS), format=fmt, data=payload(ROSBAGS, raw))


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("jpeg", CompressedFormat(None, "jpeg", None, False)),
        ("png", CompressedFormat(None, "png", None, False)),
        ("", CompressedFormat(None, None, None, False)),
        ("rgb8; jpeg compressed bgr8", CompressedFormat("rgb8", "jpeg", "bgr8", False)),
        ("bgr8; png compressed rgb8", CompressedFormat("bgr8", "png", "rgb8", False)),
        ("mono16; png compressed mono16", CompressedFormat("mono16", "png", "mono16", False)),
        ("16UC1; compressedDepth png", CompressedFormat("16UC1", "png", None, True)),
        ("32FC1; compressedDepth", CompressedFormat("32FC1", None, None, True)),
        ("JPG", CompressedFormat(None, "jpeg", None, False)),
        ("rgb8", CompressedFormat("rgb8", None, None, False)),
    ],
)
def test_parse_format(fmt: str, expected: CompressedFormat) -> None:
    assert parse_format(fmt) == expected


@pytest.mark.parametrize(
    "fmt", ["h264", "rgb8; theora", "bgr8; jpeg compressed bgr8 extra", "16UC1; compressedDepth rvl"]
)
def test_parse_format_rejects_other_codecs(fmt: str) -> None:
    with pytest.raises(MessageFormatError) as info:
        parse_format(fmt)
    assert info.value.field == "format" and info.value.actual == fmt


@pytest.mark.parametrize("name", FLAVOURS)
def test_jpeg_round_trip_bgr_and_rgb(name: str) -> None:
    types = flavour(name)
    bgr = _gradient()
    msg = array_to_compressed(bgr, header(types), types, quality=95)
    assert msg.format == "bgr8; jpeg compressed bgr8"
    assert bytes(msg.data[:3]) == b"\xff\xd8\xff"
    out = compressed_to_array(msg)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - bgr).mean() < 2.0
    rgb = bgr[..., ::-1]
    msg_rgb = array_to_compressed(rgb, header(types), types, color="rgb", quality=95)
    assert msg_rgb.format == "rgb8; jpeg compressed bgr8"
    np.testing.assert_array_equal(compressed_to_array(msg_rgb, color="rgb"), out[..., ::-1])
    np.testing.assert_array_equal(compressed_to_array(msg_rgb, color="bgr"), out)


@pytest.mark.parametrize("name", FLAVOURS)
def test_png_is_lossless_for_colour_mono_16bit_and_alpha(name: str) -> None:
    types = flavour(name)
    bgr = _gradient()
    msg = array_to_compressed(bgr, header(types), types, fmt="png")
    assert msg.format == "bgr8; png compressed bgr8"
    np.testing.assert_array_equal(compressed_to_array(msg), bgr)
    mono = bgr[..., 1]
    msg = array_to_compressed(mono, header(types), types, fmt="png")
    assert msg.format == "mono8; png compressed mono8"
    np.testing.assert_array_equal(compressed_to_array(msg, color="mono"), mono)
    np.testing.assert_array_equal(compressed_to_array(msg), np.repeat(mono[..., None], 3, axis=2))
    depth = (np.arange(48 * 64, dtype=np.uint16) * 21).reshape(48, 64)
    msg = array_to_compressed(depth, header(types), types, fmt="png")
    assert msg.format == "mono16; png compressed mono16"
    out = compressed_to_array(msg, color="passthrough")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, depth)
    rgba = np.dstack([bgr[..., ::-1], np.full((48, 64), 7, np.uint8)])
    msg = array_to_compressed(rgba, header(types), types, fmt="png", color="rgb")
    assert msg.format == "rgba8; png compressed bgra8"
    np.testing.assert_array_equal(
        compressed_to_array(msg, color="passthrough"), np.dstack([bgr, rgba[..., 3]])
    )


def test_stream_stored_in_rgb_order_is_swapped_back() -> None:
    rgb = _gradient()[..., ::-1]
    ok, png = cv2.imencode(".png", np.ascontiguousarray(rgb))  # channels written as-is: R where B goes
    assert ok
    msg = _compressed("rgb8; png compressed rgb8", png.tobytes())
    np.testing.assert_array_equal(compressed_to_array(msg, color="rgb"), rgb)
    np.testing.assert_array_equal(compressed_to_array(msg, color="bgr"), rgb[..., ::-1])


def test_real_jpeg_decodes_like_opencv() -> None:
    path = asset("coco/000000000785.jpg")
    raw = path.read_bytes()
    out = compressed_to_array(_compressed("jpeg", raw))
    expected = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert out.shape == expected.shape == (425, 640, 3)
    np.testing.assert_array_equal(out, expected)


def _depth_message(source: str, quantised: np.ndarray, quant_a: float = 0.0, quant_b: float = 0.0) -> Any:
    """What compressed_depth_image_transport sends: a 12-byte ConfigHeader, then a 16-bit PNG."""
    ok, png = cv2.imencode(".png", quantised)
    assert ok
    config = struct.pack("<iff", 0, quant_a, quant_b)
    return _compressed(f"{source}; compressedDepth png", config + png.tobytes())


def test_compressed_depth_16uc1() -> None:
    depth = np.array([[0, 1000], [65535, 42]], dtype=np.uint16)
    out = compressed_to_array(_depth_message("16UC1", depth), color="passthrough")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, depth)
    with pytest.raises(MessageFormatError, match="passthrough"):
        compressed_to_array(_depth_message("16UC1", depth))


def test_compressed_depth_32fc1_inverts_the_quantisation() -> None:
    # compressed_depth_image_transport's defaults: depth_max 10 m, quantization 100
    quant_a = 100.0 * (100.0 - 1.0)
    quant_b = 1.0 - quant_a / 10.0
    depth = np.array([[1.0, 2.5], [np.nan, 9.0]], dtype=np.float32)
    with np.errstate(invalid="ignore"):
        quantised = np.where(np.isnan(depth), 0, quant_a / depth + quant_b).astype(np.uint16)
    out = compressed_to_array(_depth_message("32FC1", quantised, quant_a, quant_b), color="passthrough")
    assert out.dtype == np.float32 and np.isnan(out[1, 0])
    np.testing.assert_allclose(out[[0, 0, 1], [0, 1, 1]], [1.0, 2.5, 9.0], rtol=2e-3)


@pytest.mark.parametrize(
    ("fmt", "raw", "fragment"),
    [
        ("jpeg", b"", "non-empty"),
        ("jpeg", b"not an image at all", "signature"),
        ("jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(40), "size"),
        ("png", cv2.imencode(".bmp", np.zeros((4, 4, 3), np.uint8))[1].tobytes(), "signature"),
        ("h264", b"\x00\x00\x00\x01", "format"),
        ("16UC1; compressedDepth png", b"\x00" * 8, "header"),
    ],
    ids=["empty", "garbage", "jpeg-without-frame", "bmp", "h264", "short-depth"],
)
def test_undecodable_data_raises_message_format_error(fmt: str, raw: bytes, fragment: str) -> None:
    with pytest.raises(MessageFormatError, match=fragment) as info:
        compressed_to_array(_compressed(fmt, raw), color="passthrough" if "Depth" in fmt else "bgr")
    assert info.value.msg_type == "sensor_msgs/msg/CompressedImage"


def test_declared_huge_png_is_refused_before_decoding() -> None:
    _, png = cv2.imencode(".png", np.zeros((4, 4), np.uint8))
    raw = bytearray(png.tobytes())
    raw[16:24] = struct.pack(">II", 100_000, 100_000)  # IHDR width, height (CRC now wrong too)
    with pytest.raises(MessageFormatError) as info:
        compressed_to_array(_compressed("png", bytes(raw)))
    assert f"1..{MAX_PIXELS} pixels" in str(info.value) and "100000x100000" in str(info.value)


def test_a_truncated_jpeg_is_malformed() -> None:
    _, jpg = cv2.imencode(".jpg", _gradient())
    for cut in (len(jpg) // 4, len(jpg) // 2, len(jpg) - 10):
        with pytest.raises(MessageFormatError, match="libjpeg"):
            compressed_to_array(_compressed("jpeg", jpg.tobytes()[:cut]))


def test_a_jpeg_with_2000_corrupt_bytes_is_malformed_though_opencv_decodes_it() -> None:
    raw = bytearray(asset("coco/000000000785.jpg").read_bytes())
    rng = np.random.default_rng(0)
    for pos in rng.choice(np.arange(1000, len(raw) - 2), 2000, replace=False):
        raw[pos] = int(rng.integers(0, 256))
    opencv = cv2.imdecode(np.frombuffer(bytes(raw), np.uint8), cv2.IMREAD_COLOR)
    assert opencv is not None and opencv.shape == (425, 640, 3)  # what was accepted: a smeared frame
    with pytest.raises(MessageFormatError) as info:
        compressed_to_array(_compressed("jpeg", bytes(raw)))
    assert (
        info.value.field == "data"
        and "decodes without errors" in str(info.value)
        and "(libjpeg: " in str(info.value)
    )


def test_grey_and_cmyk_jpegs_are_not_mistaken_for_damaged_ones() -> None:
    import io

    from PIL import Image

    grey = cv2.imencode(".jpg", _gradient()[:, :, 0])[1].tobytes()
    assert compressed_to_array(_compressed("jpeg", grey), color="mono").shape == (48, 64)
    buf = io.BytesIO()
    Image.fromarray(_gradient()[:, :, ::-1]).convert("CMYK").save(buf, "JPEG", quality=95)
    out = compressed_to_array(_compressed("jpeg", buf.getvalue()))
    assert out.shape == (48, 64, 3)
    np.testing.assert_array_equal(
        out, cv2.imdecode(np.frombuffer(buf.getvalue(), np.uint8), cv2.IMREAD_COLOR)
    )


@pytest.mark.parametrize(
    ("array", "kwargs", "fragment"),
    [
        (np.zeros((4, 4, 4), np.uint8), {"fmt": "jpeg"}, "C in (1, 3)"),
        (np.zeros((4, 4), np.uint16), {"fmt": "jpeg"}, "uint8"),
        (np.zeros((4, 4), np.float32), {"fmt": "png"}, "uint16"),
        (np.zeros((0, 4, 3), np.uint8), {}, "non-empty"),
    ],
)
def test_encoder_rejects_unencodable_arrays(array: np.ndarray, kwargs: dict, fragment: str) -> None:
    with pytest.raises(MessageFormatError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        array_to_compressed(array, header(ROSBAGS), ROSBAGS, **kwargs)
