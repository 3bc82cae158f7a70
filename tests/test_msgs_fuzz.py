"""Malformed messages of every kind: the converters return a valid array or raise MessageFormatError.

Messages are SimpleNamespace objects (as loosely typed as a rosbags dataclass, which validates nothing)
whose fields are mostly near-valid (sizes around the boundaries) and sometimes of the wrong type,
missing, or absurd. Anything other than MessageFormatError escaping fails the test.
"""

from __future__ import annotations

import array
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
from helpers.convert import ROSBAGS, header
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perception_pkg.msgs import (
    ENCODINGS,
    MessageFormatError,
    array_to_image,
    camera_info_to_model,
    compressed_to_array,
    image_to_array,
    image_to_bgr,
    image_to_rgb,
    pointcloud_to_structured,
    pointcloud_to_xyz,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_MISSING = object()

garbage = st.one_of(
    st.none(),
    st.text(max_size=4),
    st.floats(allow_nan=True),
    st.booleans(),
    st.lists(st.integers(-1, 300), max_size=3),
    st.binary(max_size=4),
    st.just(_MISSING),
)
big_ints = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([-1, 2**31 - 1, 2**31, 2**32 - 1, 2**32]))


def _mostly(draw: st.DrawFn, valid: st.SearchStrategy, bad: st.SearchStrategy = garbage) -> Any:
    """A draw from ``valid`` nine times in ten: a message needs all fields plausible to get far."""
    return draw(valid) if draw(st.integers(0, 9)) else draw(bad)


def _sized(draw: st.DrawFn, near: int | None) -> Any:
    """Usually an integer at most a few units from ``near``, else anything."""
    if near is not None and draw(st.integers(0, 9)) < 9:
        return max(0, near + draw(st.integers(-3, 3)))
    return draw(st.one_of(st.integers(0, 8), big_ints, garbage))


def _payload(draw: st.DrawFn, size: Any) -> Any:
    """Data in one of the representations seen in practice, or a wrong one."""
    n = (
        size
        if isinstance(size, int) and not isinstance(size, bool) and 0 <= size <= 4096
        else draw(st.integers(0, 64))
    )
    n = max(0, n + draw(st.sampled_from([0, 0, 0, 0, 0, -1, 1, -7])))
    raw = draw(st.binary(min_size=n, max_size=n)) if n <= 64 else np.random.default_rng(n).bytes(n)
    kind = draw(
        st.sampled_from(
            ["bytes", "ndarray", "array", "bytearray", "memoryview", "strided", "2d"] * 3
            + ["list", "float_ndarray", "float_array", "str", "none"]
        )
    )
    if kind == "ndarray":
        return np.frombuffer(raw, np.uint8).copy()
    if kind == "array":
        return array.array("B", raw)
    if kind == "bytearray":
        return bytearray(raw)
    if kind == "memoryview":
        return memoryview(raw)
    if kind == "list":
        return list(raw)
    if kind == "float_ndarray":
        return np.zeros(n, np.float32)
    if kind == "float_array":
        return array.array("f", [0.0] * n)
    if kind == "strided":
        return np.frombuffer(raw * 2, np.uint8)[::2]
    if kind == "2d":
        return np.frombuffer(raw, np.uint8).reshape(1, -1) if n else np.zeros((0, 3), np.uint8)
    if kind == "str":
        return raw.decode("latin-1")
    if kind == "none":
        return None
    return raw


def _namespace(fields: dict[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(**{k: v for k, v in fields.items() if v is not _MISSING})


@st.composite
def malformed_images(draw: st.DrawFn) -> SimpleNamespace:
    encoding = _mostly(
        draw,
        st.sampled_from(sorted(ENCODINGS)),
        st.one_of(st.sampled_from(["", "bayer_rggb8", "RGB8", "8UC5", "jpeg", "nv12"]), garbage),
    )
    info = ENCODINGS.get(encoding) if isinstance(encoding, str) else None
    bpp = info.bytes_per_pixel if info else draw(st.integers(1, 8))
    height = _sized(draw, draw(st.integers(1, 5)))
    width = _sized(draw, draw(st.integers(1, 6)))
    ints = (isinstance(height, int) and isinstance(width, int)) and not isinstance(width, bool)
    step = _sized(draw, width * bpp + draw(st.integers(0, 4)) if ints and 0 <= width < 10**6 else None)
    size = step * height if isinstance(step, int) and ints and 0 <= step * height <= 4096 else None
    fields = {
        "header": header(ROSBAGS),
        "height": height,
        "width": width,
        "encoding": encoding,
        "is_bigendian": _mostly(draw, st.sampled_from([0, 1])),
        "step": step,
        "data": _payload(draw, size),
    }
    return _namespace(fields)


def _check_image(out: np.ndarray, msg: SimpleNamespace) -> None:
    assert isinstance(out, np.ndarray)
    assert out.shape[:2] == (msg.height, msg.width)


@FUZZ
@given(msg=malformed_images())
def test_malformed_images_raise_only_message_format_error(msg: SimpleNamespace) -> None:
    for convert in (image_to_array, image_to_bgr, image_to_rgb):
        try:
            out = convert(msg)
        except MessageFormatError as err:
            assert err.msg_type == "sensor_msgs/msg/Image" and err.field
            continue
        _check_image(out, msg)
        if convert is not image_to_array:
            assert out.shape[2] == 3 and out.dtype == np.uint8
            # differential: the same pixels in a packed, aligned, native message convert identically
            packed = array_to_image(image_to_array(msg, copy=True), msg.encoding, msg.header, ROSBAGS)
            np.testing.assert_array_equal(out, convert(packed))


@st.composite
def malformed_clouds(draw: st.DrawFn) -> SimpleNamespace:
    fields: Any = []
    offset = 0
    for _ in range(draw(st.integers(0, 5)) if draw(st.integers(0, 5)) else 0):
        name = _mostly(
            draw, st.sampled_from(["x", "y", "z", "intensity", "ring", "x"]), st.one_of(st.just(""), garbage)
        )
        datatype = _mostly(draw, st.integers(1, 8), st.one_of(st.integers(-1, 10), garbage))
        count = _mostly(draw, st.sampled_from([1, 1, 1, 2]), st.one_of(st.integers(0, 3), big_ints, garbage))
        off = _sized(draw, offset)
        fields.append(_namespace({"name": name, "offset": off, "datatype": datatype, "count": count}))
        offset += 4 * (count if isinstance(count, int) and 0 < count < 4 else 1)
    if draw(st.integers(0, 20)) == 0:
        fields = draw(garbage)
    point_step = _sized(draw, offset + draw(st.integers(0, 4)))
    height = _sized(draw, draw(st.integers(0, 3)))
    width = _sized(draw, draw(st.integers(0, 6)))
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (point_step, height, width))
    row_step = _sized(
        draw,
        width * point_step + draw(st.integers(0, 3)) if ints and 0 <= width * point_step < 10**6 else None,
    )
    size = None
    if ints and isinstance(row_step, int) and 0 <= row_step * height <= 4096:
        size = row_step * height
    return _namespace(
        {
            "header": header(ROSBAGS),
            "height": height,
            "width": width,
            "fields": fields,
            "is_bigendian": _mostly(draw, st.booleans()),
            "point_step": point_step,
            "row_step": row_step,
            "data": _payload(draw, size),
            "is_dense": draw(st.booleans()),
        }
    )


@FUZZ
@given(msg=malformed_clouds())
def test_malformed_clouds_raise_only_message_format_error(msg: SimpleNamespace) -> None:
    for skip in (False, True):
        try:
            points = pointcloud_to_structured(msg, skip_nans=skip)
        except MessageFormatError as err:
            assert err.msg_type == "sensor_msgs/msg/PointCloud2" and err.field
        else:
            assert isinstance(points, np.ndarray) and points.ndim == 1
            assert len(points) <= msg.height * msg.width
        for with_intensity in (False, True):
            try:
                xyz = pointcloud_to_xyz(msg, skip_nans=skip, with_intensity=with_intensity)
            except MessageFormatError:
                continue
            assert xyz.dtype == np.float32 and xyz.shape[1] == 3 + with_intensity
            if skip:
                assert np.isfinite(xyz[:, :3]).all()
            points = pointcloud_to_structured(msg)
            if not points.dtype.names:  # an empty cloud declaring no fields
                assert xyz.shape[0] == 0
                continue
            # differential: the structured reader's fields, cast and filtered the obvious way
            names = ["x", "y", "z", "intensity"][: 3 + with_intensity]
            with np.errstate(over="ignore", invalid="ignore"):
                columns = [points[n].astype(np.float32) for n in names]
            expected = np.stack(columns, axis=1).reshape(-1, len(names))
            if skip:
                expected = expected[np.isfinite(expected[:, :3]).all(axis=1)]
            np.testing.assert_array_equal(xyz, expected)


def _valid_streams() -> list[bytes]:
    yy, xx = np.mgrid[0:24, 0:32]
    bgr = np.stack([xx * 8, yy * 10, 255 - xx * 4], axis=2).astype(np.uint8)
    streams = [cv2.imencode(ext, img)[1].tobytes() for ext in (".jpg", ".png") for img in (bgr, bgr[..., 0])]
    streams.append(cv2.imencode(".png", (yy * 1000).astype(np.uint16))[1].tobytes())
    return streams


STREAMS = _valid_streams()


@st.composite
def malformed_compressed(draw: st.DrawFn) -> SimpleNamespace:
    choice = draw(st.sampled_from(["random", "mutated", "truncated", "valid"]))
    if choice == "random":
        raw = draw(st.binary(max_size=256))
        if draw(st.booleans()):  # a real signature in front of garbage reaches the decoders
            raw = draw(st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"])) + raw
    else:
        raw = draw(st.sampled_from(STREAMS))
        if choice == "mutated":
            # one byte per example: a header can then claim at most 65535 x 32 pixels
            pos = draw(st.integers(0, len(raw) - 1))
            raw = raw[:pos] + bytes([draw(st.integers(0, 255))]) + raw[pos + 1 :]
        elif choice == "truncated":
            raw = raw[: draw(st.integers(0, len(raw)))]
    fmt = _mostly(
        draw,
        st.sampled_from(
            [
                "jpeg",
                "png",
                "",
                "rgb8; jpeg compressed bgr8",
                "bgr8; png compressed rgb8",
                "16UC1; compressedDepth png",
                "32FC1; compressedDepth png",
                "8UC1; compressedDepth",
            ]
        ),
        st.one_of(st.just("h264"), st.text(max_size=12), garbage),
    )
    if isinstance(fmt, str) and "compressedDepth" in fmt and draw(st.booleans()):
        raw = draw(st.binary(min_size=12, max_size=12)) + raw
    kind = draw(st.sampled_from(["bytes", "ndarray", "array", "bytes", "ndarray", "array", "garbage"]))
    data: Any = {
        "bytes": raw,
        "ndarray": np.frombuffer(raw, np.uint8),
        "array": array.array("B", raw),
        "garbage": draw(garbage),
    }[kind]
    return _namespace({"header": header(ROSBAGS), "format": fmt, "data": data})


@FUZZ
@given(msg=malformed_compressed())
def test_malformed_compressed_images_raise_only_message_format_error(msg: SimpleNamespace) -> None:
    for color in ("bgr", "rgb", "mono", "passthrough"):
        try:
            out = compressed_to_array(msg, color=color)
        except MessageFormatError as err:
            assert err.msg_type == "sensor_msgs/msg/CompressedImage" and err.field
            continue
        assert isinstance(out, np.ndarray) and out.size > 0
        if color in ("bgr", "rgb"):
            assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8
        elif color == "mono":
            assert out.ndim == 2 and out.dtype == np.uint8


def _floats(draw: st.DrawFn, n: int) -> Any:
    choice = draw(st.integers(0, 19))
    if choice < 17:
        vals = draw(st.lists(st.floats(-1e3, 1e3), min_size=n, max_size=n))
        return np.array(vals) if draw(st.booleans()) else vals
    if choice < 19:
        return draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=14))
    return draw(
        st.one_of(
            garbage, st.lists(st.one_of(st.text(max_size=2), st.integers(-(2**1100), 2**1100)), max_size=12)
        )
    )


@st.composite
def malformed_camera_infos(draw: st.DrawFn) -> SimpleNamespace:
    roi = _namespace(
        {
            "x_offset": _sized(draw, 0),
            "y_offset": _sized(draw, 0),
            "height": _sized(draw, 0),
            "width": _sized(draw, 0),
            "do_rectify": _mostly(draw, st.booleans()),
        }
    )
    hdr = header(ROSBAGS) if draw(st.integers(0, 5)) else _namespace({"frame_id": draw(garbage)})
    k = _floats(draw, 9)
    if isinstance(k, list) and len(k) == 9 and draw(st.booleans()):
        k[0] = k[4] = 500.0  # often valid enough to get past the focal-length check
    return _namespace(
        {
            "header": hdr,
            "height": _sized(draw, 480),
            "width": _sized(draw, 640),
            "distortion_model": _mostly(draw, st.sampled_from(["plumb_bob", "equidistant"])),
            "d": _floats(draw, 5),
            "k": k,
            "r": _floats(draw, 9),
            "p": _floats(draw, 12),
            "binning_x": _sized(draw, 0),
            "binning_y": _sized(draw, 0),
            "roi": roi,
        }
    )


@FUZZ
@given(msg=malformed_camera_infos())
def test_malformed_camera_infos_raise_only_message_format_error(msg: SimpleNamespace) -> None:
    try:
        model = camera_info_to_model(msg)
    except MessageFormatError as err:
        assert err.msg_type == "sensor_msgs/msg/CameraInfo" and err.field
        return
    assert model.K.shape == (3, 3) and model.P.shape == (3, 4) and model.R.shape == (3, 3)
    assert model.fx > 0 and model.fy > 0 and np.isfinite(model.D).all()
