"""Real data: the Luminar rosbag2 (PointCloud2 as a driver wrote it) and a KITTI velodyne sweep."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.convert import FLAVOURS, LUMINAR_DTYPE, asset, flavour, header

from perception_pkg.bag import get_typestore
from perception_pkg.msgs import (
    pointcloud_to_structured,
    pointcloud_to_xyz,
    stamp_to_ns,
    xyz_to_pointcloud,
)


@pytest.fixture(scope="module")
def luminar_messages() -> list:
    from rosbags.rosbag2 import Reader

    path = asset("bags/embag_luminar_ros2")
    store = get_typestore()
    with Reader(path) as reader:
        return [
            store.deserialize_cdr(raw, conn.msgtype)
            for conn, _, raw in reader.messages()
            if conn.msgtype == "sensor_msgs/msg/PointCloud2"
        ]


def test_luminar_bag_reads_as_structured_points(luminar_messages: list) -> None:
    assert len(luminar_messages) == 5
    for msg in luminar_messages:
        points = pointcloud_to_structured(msg)
        assert points.dtype == LUMINAR_DTYPE  # names, formats, offsets and the 32-byte step
        assert points.shape == (msg.width * msg.height,)
        assert 30_000 < len(points) < 40_000
        assert np.shares_memory(points, msg.data)  # straight off the deserialised buffer
        assert set(np.unique(points["time_sec"])) <= {
            msg.header.stamp.sec - 1,
            msg.header.stamp.sec,
            msg.header.stamp.sec + 1,
        }
        assert (points["time_nsec"] < 10**9).all()
        assert points["laser_id"].max() < 1024


def test_luminar_xyz_counts_ranges_and_intensity(luminar_messages: list) -> None:
    stamps = []
    for msg in luminar_messages:
        structured = pointcloud_to_structured(msg)
        finite = np.isfinite(structured["x"]) & np.isfinite(structured["y"]) & np.isfinite(structured["z"])
        xyz = pointcloud_to_xyz(msg)
        assert xyz.shape == (msg.width * msg.height - int((~finite).sum()), 3)
        assert xyz.dtype == np.float32 and np.isfinite(xyz).all()
        ranges = np.linalg.norm(xyz, axis=1)
        # a forward-looking automotive LiDAR: returns from ~1 m to a few hundred metres, mostly ahead
        assert 0.5 < np.percentile(ranges, 1) and np.percentile(ranges, 99) < 400
        assert np.median(xyz[:, 0]) > 0
        assert np.abs(xyz[:, 2]).max() < 100
        xyzi = pointcloud_to_xyz(msg, with_intensity=True)
        np.testing.assert_array_equal(xyzi[:, :3], xyz)
        np.testing.assert_array_equal(xyzi[:, 3], structured["intensity"][finite])
        stamps.append(stamp_to_ns(msg.header))
    assert stamps == sorted(stamps) and stamps[0] > 1_500_000_000 * 10**9


def test_luminar_cloud_reads_the_same_as_an_rclpy_message(luminar_messages: list) -> None:
    types = flavour("rclpy")
    import array

    msg = luminar_messages[0]
    fields = [
        types.PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in msg.fields
    ]
    rmsg = types.PointCloud2(
        header=header(types),
        height=msg.height,
        width=msg.width,
        fields=fields,
        is_bigendian=bool(msg.is_bigendian),
        point_step=msg.point_step,
        row_step=msg.row_step,
        data=array.array("B", msg.data.tobytes()),
        is_dense=bool(msg.is_dense),
    )
    np.testing.assert_array_equal(
        pointcloud_to_xyz(rmsg, with_intensity=True), pointcloud_to_xyz(msg, with_intensity=True)
    )
    assert pointcloud_to_structured(rmsg).tobytes() == pointcloud_to_structured(msg).tobytes()


@pytest.mark.parametrize("name", FLAVOURS)
def test_kitti_velodyne_sweep_round_trips_exactly(name: str) -> None:
    types = flavour(name)
    scan = np.fromfile(asset("kitti/training/velodyne/000000.bin"), dtype=np.float32).reshape(-1, 4)
    assert len(scan) > 100_000
    msg = xyz_to_pointcloud(scan[:, :3], header(types, frame="velo_link"), types, intensity=scan[:, 3])
    assert (msg.point_step, msg.width, msg.height) == (16, len(scan), 1)
    # the message payload is byte for byte the .bin file: KITTI's record is x, y, z, intensity float32
    assert bytes(msg.data) == scan.tobytes()
    back = pointcloud_to_xyz(msg, with_intensity=True)
    np.testing.assert_array_equal(back, scan)
    points = pointcloud_to_structured(msg)
    assert points.dtype.names == ("x", "y", "z", "intensity")
    np.testing.assert_array_equal(points["intensity"], scan[:, 3])
