"""bag/reader.py: sqlite3 and mcap bags written by rosbags directly read back exactly (topics, stamps,
raw bytes, message fields), in log-time order; corrupt CDR is counted, not raised; the project
typestore parses what it knows, the bag's own definitions what it does not (or defines otherwise)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from helpers.bags import cut, storage_file, write_clouds
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg
from rosbags.typesys import get_typestore as rosbags_typestore

from perception_pkg.bag import BagReader, BagUnreadable, get_typestore, open_bag
from perception_pkg.msgs import MessageFactory, array_to_image, image_to_rgb, make_header

IMAGE = "sensor_msgs/msg/Image"
STRING = "std_msgs/msg/String"
STORAGES = [StoragePlugin.MCAP, StoragePlugin.SQLITE3]


def _image(i: int, stamp: int):
    types = MessageFactory.rosbags(get_typestore())
    rgb = np.full((4, 6, 3), i, np.uint8)
    return array_to_image(rgb, "rgb8", make_header(types, stamp, "cam"), types)


def _write(path: Path, storage: StoragePlugin) -> list[tuple[str, int, bytes]]:
    """Images at 0.1 s steps and strings between them, plus one corrupt image; returns what was written."""
    store = get_typestore()
    written = []
    with Writer(path, version=8, storage_plugin=storage) as w:
        c_img = w.add_connection("/camera/image_raw", IMAGE, typestore=store)
        c_str = w.add_connection("/chatter", STRING, typestore=store)
        for i in range(3):
            t = 1_000_000_000 + i * 100_000_000
            raw = store.serialize_cdr(_image(i, t), IMAGE)
            w.write(c_img, t, raw)
            written.append(("/camera/image_raw", t, bytes(raw)))
            raw = store.serialize_cdr(store.types[STRING](data=f"hello {i}"), STRING)
            w.write(c_str, t + 50_000_000, raw)
            written.append(("/chatter", t + 50_000_000, bytes(raw)))
        w.write(c_img, 1_400_000_000, b"\x00\x01\x00\x00garbage")
        written.append(("/camera/image_raw", 1_400_000_000, b"\x00\x01\x00\x00garbage"))
    return written


@pytest.mark.parametrize("storage", STORAGES, ids=lambda s: s.name.lower())
def test_reads_back_topics_stamps_and_bytes_exactly(tmp_path: Path, storage: StoragePlugin) -> None:
    written = _write(tmp_path / "bag", storage)
    with open_bag(tmp_path / "bag") as reader:
        assert reader.topics == {"/camera/image_raw": IMAGE, "/chatter": STRING}
        assert [c.msgcount for c in reader.connections] == [4, 3]
        assert reader.message_count == 7
        assert reader.start_time == 1_000_000_000 and reader.end_time == 1_400_000_001
        got = [(m.topic, m.stamp, bytes(m.raw)) for m in reader.messages()]
        assert [m.msgtype for m in reader.messages()] == [IMAGE, STRING] * 3 + [IMAGE]
    assert got == written  # log-time order, which is the order written here


@pytest.mark.parametrize("storage", STORAGES, ids=lambda s: s.name.lower())
def test_corrupt_cdr_is_counted_not_raised(tmp_path: Path, storage: StoragePlugin, caplog) -> None:
    _write(tmp_path / "bag", storage)
    with open_bag(tmp_path / "bag") as reader:
        decoded = list(reader.decoded(["/camera/image_raw"]))
        assert reader.malformed == {"/camera/image_raw": 1}
        assert "deserialize" in reader.errors["/camera/image_raw"]
        assert [m.stamp for m, _ in decoded] == [1_000_000_000, 1_100_000_000, 1_200_000_000]
        for i, (_, msg) in enumerate(decoded):
            assert np.array_equal(image_to_rgb(msg), np.full((4, 6, 3), i, np.uint8))
            assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1, i * 100_000_000)
        last = list(reader.messages(["/camera/image_raw"]))[-1]
        assert reader.deserialize(last) is None and reader.malformed["/camera/image_raw"] == 2
        with caplog.at_level(logging.WARNING, logger="perception_pkg.bag.reader"):
            reader.warn_malformed()
        assert "skipped 2 message(s) on /camera/image_raw" in caplog.text


def test_topic_filter_require_and_missing_bag(tmp_path: Path) -> None:
    _write(tmp_path / "bag", StoragePlugin.MCAP)
    with BagReader(tmp_path / "bag") as reader:
        strings = [msg.data for _, msg in reader.decoded(["/chatter"])]
        assert strings == ["hello 0", "hello 1", "hello 2"]
        assert list(reader.messages(["/nothing"])) == []
        reader.require(["/chatter", "/camera/image_raw"])
        with pytest.raises(
            ValueError, match=r"no topic /nope \(it has \['/camera/image_raw', '/chatter'\]\)"
        ):
            reader.require(["/chatter", "/nope"])
    with pytest.raises(FileNotFoundError, match="bag not found"):
        open_bag(tmp_path / "absent")


def test_project_typestore_parses_what_it_knows(tmp_path: Path) -> None:
    store = get_typestore()
    _write(tmp_path / "bag", StoragePlugin.MCAP)
    with open_bag(tmp_path / "bag") as reader:
        for m, msg in reader.decoded():
            assert type(msg) is store.types[m.msgtype]


def test_bag_definitions_parse_unknown_and_redefined_types(tmp_path: Path) -> None:
    """A type the project typestore lacks, and one it defines otherwise (another hash), come out with
    the bag's layout; parsing the second with ours would misread it."""
    other = rosbags_typestore(Stores.EMPTY)
    other.register(get_types_from_msg("int32 a\nstring b", "acme_msgs/msg/Thing"))
    # our perception_msgs/Keypoint2D is float32 x, y, score, sigma: this one differs
    other.register(get_types_from_msg("float64 x\nstring note", "perception_msgs/msg/Keypoint2D"))
    kp = "perception_msgs/msg/Keypoint2D"
    assert other.hash_rihs01(kp) != get_typestore().hash_rihs01(kp)
    with Writer(tmp_path / "bag", version=8, storage_plugin=StoragePlugin.MCAP) as w:
        c1 = w.add_connection("/thing", "acme_msgs/msg/Thing", typestore=other)
        c2 = w.add_connection("/kp", kp, typestore=other)
        w.write(c1, 5, other.serialize_cdr(other.types["acme_msgs/msg/Thing"](a=-7, b="x"), c1.msgtype))
        w.write(c2, 6, other.serialize_cdr(other.types[kp](x=2.5, note="bag layout"), kp))
    with open_bag(tmp_path / "bag") as reader:
        got = {m.topic: msg for m, msg in reader.decoded()}
        assert reader.malformed == {}
    assert (got["/thing"].a, got["/thing"].b) == (-7, "x")
    assert (got["/kp"].x, got["/kp"].note) == (2.5, "bag layout")


# -- damaged bags ----------------------------------------------------------------------------------
def _complete_before(data: bytes, written: list[bytes], cut_at: int) -> int:
    """How many of the written messages lie wholly in the first ``cut_at`` bytes of the storage file."""
    n = 0
    for raw in written:
        pos = data.find(raw)
        if pos < 0 or pos + len(raw) > cut_at:
            break
        n += 1
    return n


@pytest.mark.parametrize("storage", STORAGES, ids=lambda s: s.name.lower())
def test_a_bag_cut_in_half_yields_the_messages_before_the_cut_and_says_where_it_stopped(
    tmp_path: Path, storage: StoragePlugin
) -> None:
    bag = tmp_path / "bag"
    written = write_clouds(bag, 200, storage)
    data = storage_file(bag).read_bytes()
    cut(bag, keep=len(data) // 2)
    whole = _complete_before(data, written, len(data) // 2)
    with open_bag(bag) as reader:
        assert reader.message_count <= whole
        got = [bytes(m.raw) for m in reader.messages()]
        clouds = [reader.deserialize(m) for m in reader.messages()]
        damage = reader.damage
    assert got == written[: len(got)]  # a prefix, byte for byte
    if storage == StoragePlugin.MCAP:
        assert len(got) == whole  # every message before the cut, even those inside the cut chunk
    else:
        assert whole - 8 <= len(got) <= whole  # sqlite: the page the cut falls in is lost
    assert all(c is not None and c.width == 50 for c in clouds)
    assert damage is not None and damage.read == len(got) and damage.expected == 200
    assert damage.opened and len(damage.stops) == 1
    line = damage.line()
    assert "\n" not in line and f"read {len(got)} of 200 messages" in line and "stopped at" in line


def test_an_mcap_missing_only_its_last_100_bytes_gives_every_message(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    written = write_clouds(bag, 50)
    cut(bag, drop=100)
    with open_bag(bag) as reader:
        got = [bytes(m.raw) for m in reader.messages()]
        damage = reader.damage
    assert got == written
    assert damage is not None and damage.read == 50 and damage.stops == [] and "magic" in damage.opened


def test_a_cut_zstd_mcap_recovers_inside_the_cut_chunk(tmp_path: Path) -> None:
    from mcap.writer import CompressionType
    from mcap.writer import Writer as McapWriter

    store = get_typestore()
    types = MessageFactory.rosbags(store)
    text, _ = store.generate_msgdef(IMAGE, ros_version=2)
    path = tmp_path / "z.mcap"
    written = []
    with path.open("wb") as f:
        w = McapWriter(f, chunk_size=20_000, compression=CompressionType.ZSTD)
        w.start(profile="ros2", library="test")
        sid = w.register_schema(IMAGE, "ros2msg", text.encode())
        cid = w.register_channel("/camera/image_raw", "cdr", sid)
        rng = np.random.default_rng(0)
        for i in range(60):  # noisy images: zstd cannot shrink them much, so chunks hold a few each
            rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
            raw = bytes(
                store.serialize_cdr(array_to_image(rgb, "rgb8", make_header(types, i, "c"), types), IMAGE)
            )
            w.add_message(cid, log_time=i, data=raw, publish_time=i)
            written.append(raw)
        w.finish()
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    with open_bag(path) as reader:
        got = [bytes(m.raw) for m in reader.messages()]
        assert reader.deserialize(next(reader.messages())).width == 60
        damage = reader.damage
    assert 30 <= len(got) < 60 and got == written[: len(got)]
    assert damage is not None and "z.mcap: byte" in damage.stops[0]


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("garbage.mcap", "not an mcap file"), ("garbage.db3", "file is not a database")],
)
def test_garbage_bag_files_raise_one_line_bag_unreadable(tmp_path: Path, name: str, fragment: str) -> None:
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(BagUnreadable) as info:
        open_bag(path).open()
    text = str(info.value)
    assert "\n" not in text and name in text and "nothing can be read" in text and fragment in text


def test_a_folder_with_only_metadata_yaml_raises_one_line_bag_unreadable(tmp_path: Path) -> None:
    write_clouds(tmp_path / "bag", 3)
    storage_file(tmp_path / "bag").unlink()
    with pytest.raises(BagUnreadable) as info:
        open_bag(tmp_path / "bag").open()
    text = str(info.value)
    assert "\n" not in text and "metadata.yaml lists bag.mcap, which is missing" in text


def test_an_intact_bag_has_no_damage(tmp_path: Path) -> None:
    write_clouds(tmp_path / "bag", 5)
    with open_bag(tmp_path / "bag") as reader:
        assert len(list(reader.messages())) == 5
        assert reader.damage is None
