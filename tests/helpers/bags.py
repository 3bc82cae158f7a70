"""Bags made in tests: small point clouds at a fixed rate, in mcap or sqlite3, and ways to damage them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from perception_pkg.bag import get_typestore
from perception_pkg.msgs import MessageFactory, make_header, xyz_to_pointcloud

CLOUD = "sensor_msgs/msg/PointCloud2"
T0 = 1_000_000_000
STEP = 10_000_000  # 100 Hz


def write_clouds(
    path: Path,
    n: int,
    storage: StoragePlugin = StoragePlugin.MCAP,
    points: int = 50,
    topic: str = "/lidar/points",
) -> list[bytes]:
    """``n`` clouds of ``points`` points (cloud i holds the value i) at 100 Hz; returns their CDR bytes."""
    store = get_typestore()
    types = MessageFactory.rosbags(store)
    written = []
    with Writer(path, version=8, storage_plugin=storage) as w:
        conn = w.add_connection(topic, CLOUD, typestore=store)
        for i in range(n):
            t = T0 + i * STEP
            xyz = np.full((points, 3), float(i), np.float32)
            raw = bytes(
                store.serialize_cdr(xyz_to_pointcloud(xyz, make_header(types, t, "lidar"), types), CLOUD)
            )
            w.write(conn, t, raw)
            written.append(raw)
    return written


def storage_file(bag: Path) -> Path:
    """The one .mcap or .db3 file of a bag folder."""
    (f,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    return f


def cut(bag: Path, keep: int | None = None, drop: int | None = None) -> Path:
    """Truncate a bag's storage file to ``keep`` bytes, or by its last ``drop`` bytes."""
    f = storage_file(bag)
    data = f.read_bytes()
    f.write_bytes(data[:keep] if keep is not None else data[: len(data) - (drop or 0)])
    return f
