"""sensor_msgs/Image <-> numpy: views, byte order, padding, colour conversion, errors."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from helpers.convert import (
    FLAVOURS,
    ROSBAGS,
    data_buffer,
    flavour,
    header,
    padded_rows,
    payload,
    raw_image,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_pkg.msgs import (
    ENCODINGS,
    MessageFormatError,
    array_to_image,
    image_to_array,
    image_to_bgr,
    image_to_rgb,
)

RGB_PIXELS = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)


@pytest.mark.parametrize("name", FLAVOURS)
@pytest.mark.parametrize("step", [18, 24], ids=["packed", "padded"])
def test_rgb8_is_a_view_of_msg_data(name: str, step: int) -> None:
    types = flavour(name)
    msg = raw_image(types, padded_rows(RGB_PIXELS, step), height=4, width=6, encoding="rgb8", step=step)
    arr = image_to_array(msg)
    assert arr.shape == (4, 6, 3) and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr, RGB_PIXELS)
    assert np.shares_memory(arr, data_buffer(msg))
    assert arr.strides == (step, 3, 1)


@pytest.mark.parametrize("name", FLAVOURS)
def test_big_endian_16bit_is_byteswapped_into_a_copy(name: str) -> None:
    types = flavour(name)
    depth = np.array([[1, 258, 65535], [4096, 0, 513]], dtype=np.uint16)
    msg = raw_image(
        types, depth.astype(">u2").tobytes(), height=2, width=3, encoding="16UC1", step=6, is_bigendian=1
    )
    arr = image_to_array(msg)
    assert arr.dtype == np.dtype("=u2") and arr.dtype.isnative
    np.testing.assert_array_equal(arr, depth)
    assert not np.shares_memory(arr, data_buffer(msg))
    # the same values little-endian are viewed in place
    msg_le = raw_image(types, depth.astype("<u2").tobytes(), height=2, width=3, encoding="16UC1", step=6)
    arr_le = image_to_array(msg_le)
    np.testing.assert_array_equal(arr_le, depth)
    assert np.shares_memory(arr_le, data_buffer(msg_le))


def test_unaligned_16bit_rows_are_copied_into_alignment() -> None:
    depth = (np.arange(12, dtype=np.uint16) * 5000).reshape(3, 4)
    msg = raw_image(ROSBAGS, padded_rows(depth, 9), height=3, width=4, encoding="mono16", step=9)
    arr = image_to_array(msg)
    assert arr.flags.aligned and not np.shares_memory(arr, msg.data)
    np.testing.assert_array_equal(arr, depth)
    # OpenCV misreads unaligned rows silently; through the copy the scaling is right on every row
    np.testing.assert_array_equal(image_to_bgr(msg)[..., 0], np.round(depth / 257.0).astype(np.uint8))


def test_copy_true_gives_an_independent_writable_array() -> None:
    msg = raw_image(ROSBAGS, RGB_PIXELS.tobytes(), height=4, width=6, encoding="rgb8", step=18)
    arr = image_to_array(msg, copy=True)
    assert not np.shares_memory(arr, msg.data) and arr.flags.writeable and arr.flags.c_contiguous
    arr[:] = 0
    np.testing.assert_array_equal(image_to_array(msg), RGB_PIXELS)


def test_bytes_data_is_accepted_and_viewed() -> None:
    raw = RGB_PIXELS.tobytes()
    msg = raw_image(ROSBAGS, raw, height=4, width=6, encoding="rgb8", step=18)
    msg.data = raw
    arr = image_to_array(msg)
    np.testing.assert_array_equal(arr, RGB_PIXELS)
    assert not arr.flags.writeable  # a view of immutable bytes


@pytest.mark.parametrize("encoding", ["rgb8", "mono16", "32FC1", "yuv422", "16SC3"])
def test_rclpy_and_rosbags_messages_give_identical_arrays(encoding: str) -> None:
    rclpy_types = flavour("rclpy")
    info = ENCODINGS[encoding]
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 255, size=(5, 8, info.bytes_per_pixel), dtype=np.uint8)
    step = 8 * info.bytes_per_pixel + 5
    raw = padded_rows(pixels, step)
    a = image_to_array(raw_image(ROSBAGS, raw, height=5, width=8, encoding=encoding, step=step))
    b = image_to_array(raw_image(rclpy_types, raw, height=5, width=8, encoding=encoding, step=step))
    assert a.dtype == b.dtype == info.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)


@st.composite
def image_arrays(draw: st.DrawFn) -> tuple[str, np.ndarray]:
    encoding = draw(st.sampled_from(sorted(ENCODINGS)))
    info = ENCODINGS[encoding]
    height = draw(st.integers(1, 6))
    width = 2 * draw(st.integers(1, 4))
    shape = (height, width) if info.channels == 1 else (height, width, info.channels)
    seed = draw(st.integers(0, 2**32 - 1))
    raw = np.random.default_rng(seed).integers(
        0, 256, size=int(np.prod(shape)) * info.dtype.itemsize, dtype=np.uint8
    )
    arr = raw.view(info.dtype).reshape(shape)
    if info.dtype.itemsize > 1 and draw(st.booleans()):
        arr = arr.astype(info.dtype.newbyteorder(">"))
    return encoding, arr


@pytest.mark.parametrize("name", FLAVOURS)
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_every_encoding_round_trips(encoding: str, name: str) -> None:
    types = flavour(name)
    info = ENCODINGS[encoding]
    shape = (3, 4) if info.channels == 1 else (3, 4, info.channels)
    raw = np.random.default_rng(len(encoding)).integers(
        0, 256, int(np.prod(shape)) * info.dtype.itemsize, dtype=np.uint8
    )
    arr = raw.view(info.dtype).reshape(shape)
    back = image_to_array(array_to_image(arr, encoding, header(types), types))
    assert back.dtype == info.dtype and back.shape == shape
    assert back.tobytes() == arr.tobytes()


@settings(max_examples=120, deadline=None)
@given(case=image_arrays(), name=st.sampled_from(FLAVOURS))
def test_array_to_image_round_trips_for_every_encoding(case: tuple[str, np.ndarray], name: str) -> None:
    encoding, arr = case
    types = flavour(name)
    msg = array_to_image(arr, encoding, header(types), types)
    assert msg.encoding == encoding and msg.height == arr.shape[0] and msg.width == arr.shape[1]
    assert msg.step == arr.shape[1] * ENCODINGS[encoding].bytes_per_pixel
    assert msg.is_bigendian == int(arr.dtype.byteorder == ">")
    back = image_to_array(msg)
    assert back.dtype == ENCODINGS[encoding].dtype and back.dtype.isnative
    # compare bit patterns: float encodings may hold NaN payloads
    np.testing.assert_array_equal(back.view(np.uint8), arr.astype(back.dtype).view(np.uint8))
    assert not np.shares_memory(back, arr)  # the message owns its bytes


def test_array_to_image_accepts_hxwx1_for_mono() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    msg = array_to_image(gray, "mono8", header(ROSBAGS), ROSBAGS)
    np.testing.assert_array_equal(image_to_array(msg), gray[:, :, 0])


def test_array_to_image_messages_serialise() -> None:
    img = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3)
    from perception_pkg.bag import get_typestore

    store = get_typestore()
    msg = array_to_image(img, "bgr8", header(ROSBAGS), ROSBAGS)
    again = store.deserialize_cdr(store.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)
    np.testing.assert_array_equal(image_to_array(again), img)

    rclpy_types = flavour("rclpy")
    from rclpy.serialization import deserialize_message, serialize_message

    rmsg = array_to_image(img, "bgr8", header(rclpy_types), rclpy_types)
    rback = deserialize_message(serialize_message(rmsg), rclpy_types.Image)
    np.testing.assert_array_equal(image_to_array(rback), img)
    assert rback.header.stamp.nanosec == 123_456_789


# ---- colour conversions ------------------------------------------------------------------------


def _msg(arr: np.ndarray, encoding: str) -> Any:
    return array_to_image(arr, encoding, header(ROSBAGS), ROSBAGS)


def test_image_to_bgr_and_rgb_for_8bit_colour_encodings() -> None:
    px = np.array([[[10, 20, 30]]], dtype=np.uint8)
    np.testing.assert_array_equal(image_to_bgr(_msg(px, "rgb8")), [[[30, 20, 10]]])
    np.testing.assert_array_equal(image_to_rgb(_msg(px, "rgb8")), [[[10, 20, 30]]])
    np.testing.assert_array_equal(image_to_bgr(_msg(px, "bgr8")), [[[10, 20, 30]]])
    np.testing.assert_array_equal(image_to_rgb(_msg(px, "8UC3")), [[[30, 20, 10]]])
    pxa = np.array([[[10, 20, 30, 99]]], dtype=np.uint8)
    np.testing.assert_array_equal(image_to_bgr(_msg(pxa, "rgba8")), [[[30, 20, 10]]])
    np.testing.assert_array_equal(image_to_bgr(_msg(pxa, "bgra8")), [[[10, 20, 30]]])
    np.testing.assert_array_equal(image_to_rgb(_msg(pxa, "bgra8")), [[[30, 20, 10]]])
    gray = np.array([[0, 77, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(
        image_to_bgr(_msg(gray, "mono8")), [[[0, 0, 0], [77, 77, 77], [255, 255, 255]]]
    )


def test_bgr8_to_bgr_is_a_view_unless_copy() -> None:
    msg = raw_image(ROSBAGS, padded_rows(RGB_PIXELS, 20), height=4, width=6, encoding="bgr8", step=20)
    assert np.shares_memory(image_to_bgr(msg), msg.data)
    assert not np.shares_memory(image_to_bgr(msg, copy=True), msg.data)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_16bit_mono_scales_full_range_to_8bit(encoding: str) -> None:
    depth = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    out = image_to_bgr(_msg(depth, encoding))
    assert out.shape == (1, 4, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 128, 255])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_16bit_colour_scales_and_reorders() -> None:
    px = np.array([[[65535, 257, 0]]], dtype=np.uint16)  # r, g, b
    np.testing.assert_array_equal(image_to_bgr(_msg(px, "rgb16")), [[[0, 1, 255]]])
    big = _msg(px.astype(">u2"), "rgb16")
    np.testing.assert_array_equal(image_to_rgb(big), [[[255, 1, 0]]])


def _color_bars() -> np.ndarray:
    """8 vertical bars (white, yellow, cyan, green, magenta, red, blue, black), 4 px each, BGR."""
    bars = np.array(
        [
            [255, 255, 255],
            [0, 255, 255],
            [255, 255, 0],
            [0, 255, 0],
            [255, 0, 255],
            [0, 0, 255],
            [255, 0, 0],
            [0, 0, 0],
        ],
        dtype=np.uint8,
    )
    return np.repeat(bars, 4, axis=0)[None].repeat(6, axis=0)  # 6 x 32 x 3


@pytest.mark.parametrize(
    ("encoding", "to_yuv", "from_yuv"),
    [
        ("yuv422", cv2.COLOR_BGR2YUV_UYVY, cv2.COLOR_YUV2BGR_UYVY),
        ("uyvy", cv2.COLOR_BGR2YUV_UYVY, cv2.COLOR_YUV2BGR_UYVY),
        ("yuyv", cv2.COLOR_BGR2YUV_YUY2, cv2.COLOR_YUV2BGR_YUY2),
        ("yuv422_yuy2", cv2.COLOR_BGR2YUV_YUY2, cv2.COLOR_YUV2BGR_YUY2),
    ],
)
def test_yuv422_agrees_with_opencv_on_colour_bars(encoding: str, to_yuv: int, from_yuv: int) -> None:
    bars = _color_bars()
    packed = cv2.cvtColor(bars, to_yuv)
    assert packed.shape == (6, 32, 2)
    # row padding too: the strided view must go through cvtColor unchanged
    msg = raw_image(ROSBAGS, padded_rows(packed, 72), height=6, width=32, encoding=encoding, step=72)
    bgr = image_to_bgr(msg)
    np.testing.assert_array_equal(bgr, cv2.cvtColor(packed, from_yuv))
    # and the colours survive the 4:2:2 round trip (bars are 4 px wide, so chroma pairs never straddle)
    assert np.abs(bgr.astype(int) - bars).max() <= 3
    np.testing.assert_array_equal(image_to_rgb(msg), bgr[..., ::-1])


def test_uyvy_and_yuyv_are_byte_reorderings_of_each_other() -> None:
    uyvy = cv2.cvtColor(_color_bars(), cv2.COLOR_BGR2YUV_UYVY)
    yuyv = uyvy.reshape(6, 16, 4)[..., [1, 0, 3, 2]].reshape(6, 32, 2)
    a = image_to_bgr(_msg(uyvy, "uyvy"))
    b = image_to_bgr(_msg(np.ascontiguousarray(yuyv), "yuyv"))
    np.testing.assert_array_equal(a, b)


def test_known_bt601_red_in_uyvy() -> None:
    # BT.601 limited range red: Y=81, U(Cb)=90, V(Cr)=240
    packed = np.tile(np.array([90, 81, 240, 81], dtype=np.uint8), (2, 2)).reshape(2, 4, 2)
    bgr = image_to_bgr(_msg(packed, "uyvy"))
    assert np.abs(bgr.astype(int) - [0, 0, 255]).max() <= 4


# ---- errors ------------------------------------------------------------------------------------


def _bad(**changes: object) -> Any:
    fields = {
        "height": 4,
        "width": 6,
        "encoding": "rgb8",
        "step": 18,
        "is_bigendian": 0,
        "data": payload(ROSBAGS, RGB_PIXELS.tobytes()),
    }
    fields.update(changes)
    return ROSBAGS.Image(header=header(ROSBAGS), **fields)


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"step": 17}, "step", ">= width * 3 = 18"),
        ({"data": np.zeros(71, np.uint8)}, "data", ">= step * height = 72"),
        ({"step": 20}, "data", ">= step * height = 80"),
        ({"encoding": "bayer_rggb8"}, "encoding", "'bayer_rggb8'"),
        ({"encoding": "RGB8"}, "encoding", "ENCODINGS"),
        ({"width": 0}, "width", "positive"),
        ({"height": 0}, "height", "positive"),
        ({"data": [0] * 72}, "data", "list"),
        ({"data": np.zeros(72, np.float32)}, "data", "float32"),
        ({"height": -1}, "height", "[0, 4294967296)"),
        ({"width": 6.0}, "width", "float"),
        ({"encoding": "yuv422", "width": 3, "step": 6}, "width", "even"),
    ],
)
def test_bad_images_name_the_field(changes: dict, field: str, fragment: str) -> None:
    with pytest.raises(MessageFormatError) as info:
        image_to_array(_bad(**changes))
    assert info.value.field == field
    assert info.value.msg_type == "sensor_msgs/msg/Image"
    assert field in str(info.value) and fragment in str(info.value)


def test_float_images_have_no_colour_mapping() -> None:
    msg = _msg(np.zeros((2, 2), np.float32), "32FC1")
    assert image_to_array(msg).dtype == np.float32
    with pytest.raises(MessageFormatError, match="encoding"):
        image_to_bgr(msg)


@pytest.mark.parametrize(
    ("array", "encoding", "fragment"),
    [
        (np.zeros((2, 2, 3), np.float32), "rgb8", "uint8"),
        (np.zeros((2, 2), np.uint8), "rgb8", "HxWx3"),
        (np.zeros((2, 2, 3), np.uint8), "mono8", "HxW or HxWx1"),
        (np.zeros((0, 2, 3), np.uint8), "rgb8", "non-empty"),
        (np.zeros((2, 2, 3), np.uint8), "jpeg", "ENCODINGS"),
        (np.zeros((2, 3, 2), np.uint8), "uyvy", "even"),
    ],
)
def test_array_to_image_rejects_mismatched_arrays(array: np.ndarray, encoding: str, fragment: str) -> None:
    with pytest.raises(MessageFormatError, match=fragment.replace("(", r"\(")):
        array_to_image(array, encoding, header(ROSBAGS), ROSBAGS)
