"""sensor_msgs/PointCloud2 <-> numpy: layouts, padding, byte order, NaNs, views, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers.convert import (
    FLAVOURS,
    ITEM_SIZES,
    LUMINAR_FIELDS,
    ROSBAGS,
    data_buffer,
    flavour,
    header,
    luminar_like_structured,
    pack_cloud_reference,
    raw_cloud,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_pkg.msgs import (
    DATATYPES,
    MessageFormatError,
    pointcloud_to_structured,
    pointcloud_to_xyz,
    structured_to_pointcloud,
    xyz_to_pointcloud,
)

# ---- random layouts ----------------------------------------------------------------------------

FIELD_NAMES = ("x", "y", "z", "intensity", "ring", "t", "rgb", "normal")


@st.composite
def cloud_layouts(draw: st.DrawFn) -> dict:
    """Fields at random (possibly unaligned) offsets with gaps, point_step padding, organised clouds
    with row padding, either byte order."""
    names = draw(st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=5, unique=True))
    fields = []
    offset = 0
    for name in names:
        datatype = draw(st.integers(1, 8))
        count = draw(st.sampled_from([1, 1, 1, 2, 3]))
        offset += draw(st.integers(0, 3))  # gap before the field
        fields.append((name, offset, datatype, count))
        offset += ITEM_SIZES[datatype] * count
    point_step = offset + draw(st.integers(0, 5))
    height = draw(st.integers(1, 3))
    width = draw(st.integers(1, 6))
    row_step = width * point_step + (draw(st.integers(0, 7)) if height > 1 else 0)
    return {
        "fields": fields,
        "point_step": point_step,
        "height": height,
        "width": width,
        "row_step": row_step,
        "big_endian": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def _random_values(fields: list, n: int, seed: int) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    values = {}
    for name, _, datatype, count in fields:
        dt = DATATYPES[datatype]
        if dt.kind == "f":
            vals = rng.normal(0, 100, size=(n, count)).astype(dt)
            vals[rng.random((n, count)) < 0.1] = np.nan
        else:
            info = np.iinfo(dt)
            vals = rng.integers(info.min, info.max, size=(n, count), endpoint=True, dtype=dt)
        values[name] = vals.tolist()
    return values


@settings(max_examples=150, deadline=None)
@given(layout=cloud_layouts(), name=st.sampled_from(FLAVOURS))
def test_structured_reader_matches_a_struct_packed_reference(layout: dict, name: str) -> None:
    types = flavour(name)
    n = layout["height"] * layout["width"]
    values = _random_values(layout["fields"], n, layout["seed"])
    raw = pack_cloud_reference(
        layout["fields"],
        values,
        height=layout["height"],
        width=layout["width"],
        point_step=layout["point_step"],
        row_step=layout["row_step"],
        big_endian=layout["big_endian"],
    )
    msg = raw_cloud(
        types,
        raw,
        layout["fields"],
        height=layout["height"],
        width=layout["width"],
        point_step=layout["point_step"],
        row_step=layout["row_step"],
        big_endian=layout["big_endian"],
    )
    points = pointcloud_to_structured(msg, check_xyz=False)  # any layout, x/y/z of any type included
    assert points.shape == (n,)
    assert points.dtype.names == tuple(f[0] for f in layout["fields"])
    assert points.dtype.itemsize == layout["point_step"]
    for fname, offset, datatype, count in layout["fields"]:
        dt, off = points.dtype.fields[fname][:2]
        assert off == offset and dt.base.isnative and dt.base == DATATYPES[datatype].newbyteorder("=")
        assert dt.shape == (() if count == 1 else (count,))
        got = points[fname].reshape(n, count)
        np.testing.assert_array_equal(got, np.array(values[fname], dtype=DATATYPES[datatype]))


@st.composite
def structured_arrays(draw: st.DrawFn) -> np.ndarray:
    layout = draw(cloud_layouts())
    formats = []
    for _, _, datatype, count in layout["fields"]:
        base = DATATYPES[datatype].newbyteorder(">" if layout["big_endian"] else "<")
        formats.append(base if count == 1 else (base, (count,)))
    dtype = np.dtype(
        {
            "names": [f[0] for f in layout["fields"]],
            "formats": formats,
            "offsets": [f[1] for f in layout["fields"]],
            "itemsize": layout["point_step"],
        }
    )
    n = layout["height"] * layout["width"]
    values = _random_values(layout["fields"], n, layout["seed"])
    arr = np.zeros(n, dtype=dtype)
    for fname, _, _, count in layout["fields"]:
        arr[fname] = np.array(values[fname]).reshape((n,) if count == 1 else (n, count))
    return arr.reshape(layout["height"], layout["width"]) if draw(st.booleans()) else arr


@settings(max_examples=150, deadline=None)
@given(points=structured_arrays(), name=st.sampled_from(FLAVOURS))
def test_structured_round_trip_is_identity(points: np.ndarray, name: str) -> None:
    types = flavour(name)
    msg = structured_to_pointcloud(points, header(types), types)
    height, width = points.shape if points.ndim == 2 else (1, points.shape[0])
    assert (msg.height, msg.width) == (height, width)
    assert msg.point_step == points.dtype.itemsize and msg.row_step == width * msg.point_step
    multibyte = [points.dtype[f].base for f in points.dtype.names if points.dtype[f].base.itemsize > 1]
    assert msg.is_bigendian == (bool(multibyte) and all(b.byteorder == ">" for b in multibyte))
    back = pointcloud_to_structured(msg, check_xyz=False)
    flat = points.reshape(-1)
    assert back.dtype.names == flat.dtype.names and back.dtype.itemsize == flat.dtype.itemsize
    for fname in flat.dtype.names:
        assert back.dtype.fields[fname][1] == flat.dtype.fields[fname][1]
        np.testing.assert_array_equal(back[fname], flat[fname])


@pytest.mark.parametrize("name", FLAVOURS)
def test_structured_reader_is_a_view_of_msg_data(name: str) -> None:
    types = flavour(name)
    pts = luminar_like_structured(100)
    msg = raw_cloud(types, pts.tobytes(), LUMINAR_FIELDS, height=1, width=100, point_step=32, row_step=3200)
    out = pointcloud_to_structured(msg)
    assert np.shares_memory(out, data_buffer(msg))
    for fname in pts.dtype.names:
        np.testing.assert_array_equal(out[fname], pts[fname])


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview], ids=lambda w: w.__name__)
def test_bytes_like_data_is_read_in_place(wrap: type) -> None:
    pts = luminar_like_structured(10)
    msg = raw_cloud(ROSBAGS, b"", LUMINAR_FIELDS, height=1, width=10, point_step=32, row_step=320)
    msg.data = wrap(pts.tobytes())
    out = pointcloud_to_structured(msg)
    assert out.tobytes() == pts.tobytes()
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))
    np.testing.assert_array_equal(pointcloud_to_xyz(msg)[:, 2], pts["z"])


def test_organised_cloud_with_row_padding() -> None:
    pts = luminar_like_structured(12).reshape(3, 4)
    raw = b"".join(row.tobytes() + b"\xee" * 16 for row in pts)
    msg = raw_cloud(ROSBAGS, raw, LUMINAR_FIELDS, height=3, width=4, point_step=32, row_step=4 * 32 + 16)
    out = pointcloud_to_structured(msg)
    assert out.shape == (12,)
    np.testing.assert_array_equal(out["laser_id"].reshape(3, 4), pts["laser_id"])
    xyzi = pointcloud_to_xyz(msg, with_intensity=True)
    expected = np.stack([pts[k].reshape(-1) for k in ("x", "y", "z", "intensity")], axis=1)
    np.testing.assert_array_equal(xyzi, expected)


# ---- xyz -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FLAVOURS)
def test_xyz_from_luminar_layout(name: str) -> None:
    types = flavour(name)
    pts = luminar_like_structured(1000, seed=3)
    msg = raw_cloud(types, pts.tobytes(), LUMINAR_FIELDS, height=1, width=1000, point_step=32, row_step=32000)
    xyz = pointcloud_to_xyz(msg)
    assert xyz.dtype == np.float32 and xyz.shape == (1000, 3) and xyz.flags.c_contiguous
    np.testing.assert_array_equal(xyz, np.stack([pts["x"], pts["y"], pts["z"]], axis=1))
    xyzi = pointcloud_to_xyz(msg, with_intensity=True)  # intensity at offset 16, not 12
    np.testing.assert_array_equal(xyzi[:, 3], pts["intensity"])
    assert not np.shares_memory(xyz, data_buffer(msg))


def test_skip_nans_drops_rows_with_non_finite_xyz_only() -> None:
    pts = luminar_like_structured(6)
    pts["x"][1] = np.nan
    pts["z"][3] = np.inf
    pts["intensity"][4] = np.nan  # not a coordinate: the point stays
    msg = structured_to_pointcloud(pts, header(ROSBAGS), ROSBAGS)
    assert msg.is_dense is False
    kept = pointcloud_to_xyz(msg, with_intensity=True)
    np.testing.assert_array_equal(kept[:, 0], pts["x"][[0, 2, 4, 5]])
    assert np.isnan(kept[2, 3])
    assert pointcloud_to_xyz(msg, skip_nans=False).shape == (6, 3)
    structured = pointcloud_to_structured(msg, skip_nans=True)
    np.testing.assert_array_equal(structured["laser_id"], pts["laser_id"][[0, 2, 4, 5]])
    assert len(pointcloud_to_structured(msg)) == 6


def test_xyz_casts_float64_and_any_intensity_type_in_both_byte_orders() -> None:
    fields = [("x", 0, 8, 1), ("y", 8, 7, 1), ("z", 12, 8, 1), ("intensity", 20, 4, 1)]
    values = {"x": [[1.5], [-2.25]], "y": [[-300], [7]], "z": [[255], [0]], "intensity": [[65535], [1]]}
    for big in (False, True):
        raw = pack_cloud_reference(
            fields, values, height=1, width=2, point_step=22, row_step=44, big_endian=big
        )
        msg = raw_cloud(ROSBAGS, raw, fields, height=1, width=2, point_step=22, row_step=44, big_endian=big)
        np.testing.assert_array_equal(
            pointcloud_to_xyz(msg, with_intensity=True), [[1.5, -300, 255, 65535], [-2.25, 7, 0, 1]]
        )


@pytest.mark.parametrize(("datatype", "label"), [(2, "UINT8"), (1, "INT8"), (3, "INT16"), (5, "INT32")])
@pytest.mark.parametrize("coordinate", [0, 1, 2])
def test_integer_coordinates_are_malformed_not_cast(datatype: int, label: str, coordinate: int) -> None:
    fields = [("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("intensity", 12, 7, 1)]
    name = "xyz"[coordinate]
    fields[coordinate] = (name, 4 * coordinate, datatype, 1)
    msg = _cloud(fields=fields)
    for read in (pointcloud_to_xyz, pointcloud_to_structured):
        with pytest.raises(MessageFormatError) as info:
            read(msg)
        assert info.value.field == f"fields[{coordinate}].datatype"
        assert f"{datatype} ({label})" in str(info.value) and f"field {name!r}" in str(info.value)
    assert pointcloud_to_structured(msg, check_xyz=False)[name].dtype.kind in "iu"  # the raw view


@pytest.mark.parametrize("name", FLAVOURS)
def test_xyz_to_pointcloud_layout_and_round_trip(name: str) -> None:
    types = flavour(name)
    xyz = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float64)
    msg = xyz_to_pointcloud(xyz, header(types), types, intensity=np.array([0.5, 0.25]))
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, 7, 1),
        ("y", 4, 7, 1),
        ("z", 8, 7, 1),
        ("intensity", 12, 7, 1),
    ]
    assert (msg.point_step, msg.row_step, msg.height, msg.width) == (16, 32, 1, 2)
    assert msg.is_dense is True and msg.is_bigendian is False
    assert msg.header.frame_id == "sensor"
    np.testing.assert_array_equal(
        pointcloud_to_xyz(msg, with_intensity=True), [[1, 2, 3, 0.5], [4, 5, 6, 0.25]]
    )
    plain = xyz_to_pointcloud(xyz, header(types), types)
    assert plain.point_step == 12 and [f.name for f in plain.fields] == ["x", "y", "z"]


def test_rclpy_and_rosbags_clouds_give_identical_arrays() -> None:
    rclpy_types = flavour("rclpy")
    pts = luminar_like_structured(500, seed=11)
    pts["y"][::7] = np.nan
    args = {"height": 1, "width": 500, "point_step": 32, "row_step": 16000}
    a = raw_cloud(ROSBAGS, pts.tobytes(), LUMINAR_FIELDS, **args)
    b = raw_cloud(rclpy_types, pts.tobytes(), LUMINAR_FIELDS, **args)
    np.testing.assert_array_equal(
        pointcloud_to_xyz(a, with_intensity=True), pointcloud_to_xyz(b, with_intensity=True)
    )
    sa, sb = pointcloud_to_structured(a), pointcloud_to_structured(b)
    assert sa.dtype == sb.dtype
    assert sa.tobytes() == sb.tobytes()


def test_written_clouds_serialise_in_both_flavours() -> None:
    pts = luminar_like_structured(50)
    from perception_pkg.bag import get_typestore

    store = get_typestore()
    msg = structured_to_pointcloud(pts, header(ROSBAGS), ROSBAGS)
    again = store.deserialize_cdr(store.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)
    assert pointcloud_to_structured(again).tobytes() == pts.tobytes()

    rclpy_types = flavour("rclpy")
    from rclpy.serialization import deserialize_message, serialize_message

    rmsg = structured_to_pointcloud(pts, header(rclpy_types), rclpy_types)
    rback = deserialize_message(serialize_message(rmsg), rclpy_types.PointCloud2)
    assert pointcloud_to_structured(rback).tobytes() == pts.tobytes()


def test_writer_copies_and_converts_mixed_byte_order_to_little() -> None:
    dtype = np.dtype(
        {"names": ["x", "y", "z"], "formats": [">f4", "<f4", ">f8"], "offsets": [0, 4, 8], "itemsize": 20}
    )
    pts = np.zeros(3, dtype=dtype)
    pts["x"], pts["y"], pts["z"] = [1, 2, 3], [4, 5, 6], [7, 8, 9]
    msg = structured_to_pointcloud(pts, header(ROSBAGS), ROSBAGS)
    assert msg.is_bigendian is False
    assert bytes(msg.data[16:20]) == b"\0\0\0\0"  # padding is zeroed, not leftover memory
    np.testing.assert_array_equal(pointcloud_to_xyz(msg), [[1, 4, 7], [2, 5, 8], [3, 6, 9]])
    same = structured_to_pointcloud(luminar_like_structured(4), header(ROSBAGS), ROSBAGS)
    assert not np.shares_memory(same.data, pts)


# ---- empty and malformed clouds ---------------------------------------------------------------


@pytest.mark.parametrize("name", FLAVOURS)
def test_empty_clouds_are_valid(name: str) -> None:
    types = flavour(name)
    bare = raw_cloud(types, b"", [], height=1, width=0, point_step=0, row_step=0)
    assert pointcloud_to_xyz(bare).shape == (0, 3)
    assert pointcloud_to_xyz(bare, with_intensity=True).shape == (0, 4)
    assert pointcloud_to_structured(bare).shape == (0,)
    empty = xyz_to_pointcloud(np.zeros((0, 3)), header(types), types)
    assert (empty.width, empty.height, len(empty.data)) == (0, 1, 0)
    assert pointcloud_to_xyz(empty).shape == (0, 3)
    assert pointcloud_to_structured(empty).dtype.names == ("x", "y", "z")


def _cloud(**changes: object) -> Any:
    pts = luminar_like_structured(4)
    fields = changes.pop("fields") if changes.get("fields") is not None else LUMINAR_FIELDS
    args = {"height": 1, "width": 4, "point_step": 32, "row_step": 128, "big_endian": False}
    args.update({k: changes.pop(k) for k in list(changes) if k in args})
    msg = raw_cloud(ROSBAGS, pts.tobytes(), fields, **args)
    for key, value in changes.items():
        setattr(msg, key, value)
    return msg


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"fields": LUMINAR_FIELDS[1:]}, "fields", "missing ['x']"),
        ({"point_step": 28}, "point_step", "field 'laser_id' ends at byte 30"),
        ({"row_step": 127}, "row_step", ">= width * point_step = 128"),
        ({"fields": [*LUMINAR_FIELDS, ("far", 40, 7, 1)]}, "point_step", "ends at byte 44"),
        ({"fields": [("x", 0, 9, 1), *LUMINAR_FIELDS[1:]]}, "fields[0].datatype", "1..8"),
        ({"fields": [("x", 0, 0, 1), *LUMINAR_FIELDS[1:]]}, "fields[0].datatype", "got 0"),
        ({"fields": [("x", 0, 7, 0), *LUMINAR_FIELDS[1:]]}, "fields[0].count", ">= 1"),
        ({"fields": [*LUMINAR_FIELDS, ("x", 0, 7, 1)]}, "fields[7].name", "unique"),
        ({"width": 5, "row_step": 160}, "data", ">= 160 bytes"),
        ({"height": 2, "row_step": 128}, "data", ">= 256 bytes"),
        ({"data": list(range(128))}, "data", "list"),
        ({"data": "abc"}, "data", "str"),
        ({"point_step": 0, "fields": []}, "point_step", "> 0"),
        ({"point_step": 2**31}, "point_step", "<= 2147483647"),
        ({"fields": None}, "fields", "NoneType"),
    ],
)
def test_bad_clouds_name_the_field(changes: dict, field: str, fragment: str) -> None:
    msg = _cloud(**changes)
    with pytest.raises(MessageFormatError) as info:
        pointcloud_to_xyz(msg)
    assert info.value.field == field, str(info.value)
    assert info.value.msg_type == "sensor_msgs/msg/PointCloud2"
    assert fragment in str(info.value)


def test_xyz_needs_single_count_coordinates() -> None:
    msg = _cloud(fields=[("x", 0, 7, 3), ("y", 12, 7, 1), ("z", 16, 7, 1)])
    assert pointcloud_to_structured(msg, check_xyz=False)["x"].shape == (4, 3)
    with pytest.raises(MessageFormatError, match="count"):
        pointcloud_to_xyz(msg)
    with pytest.raises(MessageFormatError, match=r"fields\[0\]\.count: expected 1 for a coordinate, got 3"):
        pointcloud_to_structured(msg)


@pytest.mark.parametrize(
    "points",
    [
        np.zeros((4, 3), np.float32),
        np.zeros(3, dtype=[("x", "f2")]),
        np.zeros(3, dtype=[("x", "c8")]),
        np.zeros(3, dtype=[("x", [("a", "f4")])]),
        np.zeros((1, 2, 3), dtype=[("x", "f4")]),
    ],
    ids=["unstructured", "float16", "complex", "nested", "3-d"],
)
def test_writer_rejects_unrepresentable_arrays(points: np.ndarray) -> None:
    with pytest.raises(MessageFormatError):
        structured_to_pointcloud(points, header(ROSBAGS), ROSBAGS)


@pytest.mark.parametrize("xyz", [np.zeros((3, 4)), np.zeros(3), np.array([["a", "b", "c"]])])
def test_xyz_writer_rejects_wrong_shapes(xyz: np.ndarray) -> None:
    with pytest.raises(MessageFormatError, match=r"\(N, 3\)"):
        xyz_to_pointcloud(xyz, header(ROSBAGS), ROSBAGS)
    with pytest.raises(MessageFormatError, match="intensity"):
        xyz_to_pointcloud(np.zeros((3, 3)), header(ROSBAGS), ROSBAGS, intensity=np.zeros(2))
