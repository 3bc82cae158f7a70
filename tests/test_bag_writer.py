"""bag/writer.py: a bag written with BagWriter reads back (BagReader, and the independent mcap reader)
with exactly its messages, stamps and connection order; mcap, version 8, custom data, latched QoS;
misuse (a topic twice with two types, an unknown topic, a message of the wrong type) is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from perception_pkg.bag import BagWriter, get_typestore, open_bag
from perception_pkg.bag.writer import LATCHED_QOS
from perception_pkg.msgs import MessageFactory, make_header, pointcloud_to_xyz, xyz_to_pointcloud

CLOUD = "sensor_msgs/msg/PointCloud2"
STRING = "std_msgs/msg/String"
TF = "tf2_msgs/msg/TFMessage"


def _cloud(i: int, stamp: int):
    types = MessageFactory.rosbags(get_typestore())
    xyz = np.arange(12, dtype=np.float32).reshape(4, 3) + i
    return xyz_to_pointcloud(xyz, make_header(types, stamp, "lidar"), types)


@pytest.fixture
def bag(tmp_path: Path) -> Path:
    """Clouds as message objects, strings as raw CDR, a latched /tf_static; custom data set."""
    store = get_typestore()
    path = tmp_path / "bag"
    with BagWriter(path, custom_data={"who": "test"}) as w:
        w.add_connection("/lidar/points", CLOUD)
        w.add_connection("/chatter", STRING)
        w.add_connection("/tf_static", TF, latched=True)
        assert w.add_connection("/chatter", STRING) is w.add_connection("/chatter", STRING)
        assert list(w.topics) == ["/lidar/points", "/chatter", "/tf_static"] and "/chatter" in w
        w.write("/tf_static", 10, store.types[TF](transforms=[]))
        for i in range(3):
            t = 1_000_000_000 + i * 100_000_000
            w.write("/lidar/points", t, _cloud(i, t))
            w.write("/chatter", t + 1, store.serialize_cdr(store.types[STRING](data=f"m{i}"), STRING))
    return path


def test_messages_stamps_and_connections_read_back_exactly(bag: Path) -> None:
    store = get_typestore()
    with open_bag(bag) as reader:
        assert [(c.topic, c.msgtype) for c in reader.connections] == [
            ("/lidar/points", CLOUD), ("/chatter", STRING), ("/tf_static", TF)
        ]  # fmt: skip
        got = [(m.topic, m.stamp, msg) for m, msg in reader.decoded()]
        raws = {(m.topic, m.stamp): bytes(m.raw) for m in reader.messages()}
        assert reader.malformed == {}
    assert [(t, s) for t, s, _ in got] == [("/tf_static", 10)] + [
        (topic, 1_000_000_000 + i * 100_000_000 + k) for i in range(3) for k, topic in ((0, "/lidar/points"),
                                                                                        (1, "/chatter"))
    ]  # fmt: skip
    clouds = [msg for t, _, msg in got if t == "/lidar/points"]
    for i, msg in enumerate(clouds):
        expected = np.arange(12, dtype=np.float32).reshape(4, 3) + i
        assert np.array_equal(pointcloud_to_xyz(msg), expected)
        t = 1_000_000_000 + i * 100_000_000
        assert raws[("/lidar/points", t)] == bytes(store.serialize_cdr(_cloud(i, t), CLOUD))
    assert [msg.data for t, _, msg in got if t == "/chatter"] == ["m0", "m1", "m2"]


def test_storage_version_custom_data_and_latched_qos(bag: Path) -> None:
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 8 and meta["storage_identifier"] == "mcap"
    assert meta["compression_mode"] == "" and meta["custom_data"] == {"who": "test"}
    assert meta["relative_file_paths"] == ["bag.mcap"]
    with open_bag(bag) as reader:
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    assert qos == {"/lidar/points": [], "/chatter": [], "/tf_static": [LATCHED_QOS]}


def test_the_mcap_reader_reads_it(bag: Path) -> None:
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with (bag / "bag.mcap").open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        msgs = [(m.log_time, ros.data) for _, _, m, ros in reader.iter_decoded_messages(topics=["/chatter"])]
    assert msgs == [(1_000_000_001, "m0"), (1_100_000_001, "m1"), (1_200_000_001, "m2")]


def test_misuse_is_refused(tmp_path: Path, bag: Path) -> None:
    store = get_typestore()
    with BagWriter(tmp_path / "other") as w:
        w.add_connection("/chatter", STRING)
        with pytest.raises(ValueError, match="is std_msgs/msg/String, not"):
            w.add_connection("/chatter", CLOUD)
        with pytest.raises(KeyError, match="no connection for /nope"):
            w.write("/nope", 1, b"")
        with pytest.raises(ValueError, match="a sensor_msgs/msg/PointCloud2 written to /chatter"):
            w.write("/chatter", 1, _cloud(0, 1))
        w.write("/chatter", 2, store.types[STRING](data="ok"))
    with open_bag(tmp_path / "other") as reader:
        assert [msg.data for _, msg in reader.decoded()] == ["ok"]
    with pytest.raises(Exception, match="exists already"):
        BagWriter(bag).open()
