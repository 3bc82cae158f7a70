"""perception replay: statistics, pipelines and output bag on real and crafted bags, bad messages counted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.bags import cut, storage_file, write_clouds
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer

from perception_pkg.bag import get_typestore
from perception_pkg.msgs import (
    MessageFactory,
    array_to_image,
    make_header,
    pointcloud_to_xyz,
    xyz_to_pointcloud,
)
from perception_pkg.replay import replay_bag

CLOUD = "sensor_msgs/msg/PointCloud2"
IMAGE = "sensor_msgs/msg/Image"


def _topic_counts(bag: Path) -> dict[str, int]:
    with AnyReader([bag], default_typestore=get_typestore()) as reader:
        return {c.topic: c.msgcount for c in reader.connections}


@pytest.fixture
def crafted_bag(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """3 clouds (one with NaNs, one truncated), 2 images, 1 corrupt CDR blob, at 10 Hz."""
    storage = getattr(request, "param", StoragePlugin.MCAP)
    store = get_typestore()
    types = MessageFactory.rosbags(store)
    path = tmp_path / "in_bag"
    with Writer(path, version=8, storage_plugin=storage) as w:
        c_cloud = w.add_connection("/lidar/points", CLOUD, typestore=store)
        c_img = w.add_connection("/camera/image_raw", IMAGE, typestore=store)
        for i in range(3):
            t = 1_000_000_000 + i * 100_000_000
            xyz = np.array([[5, 0, 0], [10, 1, 0], [0.2, 0, 0], [np.nan, 0, 0]], np.float32)
            msg = xyz_to_pointcloud(xyz, make_header(types, t, "lidar"), types)
            if i == 2:  # claims 4 points, carries 2
                msg.data = msg.data[: 2 * msg.point_step]
            w.write(c_cloud, t, store.serialize_cdr(msg, CLOUD))
        for i in range(2):
            t = 1_000_000_000 + i * 100_000_000
            img = array_to_image(np.zeros((48, 64, 3), np.uint8), "rgb8", make_header(types, t, "cam"), types)
            w.write(c_img, t, store.serialize_cdr(img, IMAGE))
        w.write(c_img, 1_300_000_000, b"\x00\x01\x00\x00garbage")
    return path


def test_replay_reports_counts_rates_sizes_and_filters_clouds(crafted_bag: Path, tmp_path: Path) -> None:
    res = replay_bag(crafted_bag, tmp_path / "out", ["cloud_filter"], progress=False)
    topics = res.summary["topics"]
    cloud = topics["/lidar/points"]
    assert cloud["count"] == 3 and cloud["rate_hz"] == pytest.approx(10.0)
    assert cloud["malformed"] == 1 and "data" in cloud["last_error"]
    assert cloud["points"]["mean"] == 3.0 and cloud["points"]["finite_share"] == pytest.approx(0.75)
    img = topics["/camera/image_raw"]
    assert img["sizes"] == {"64x48 rgb8": 2}
    assert img["count"] == 3 and img["malformed"] == 1 and img["last_error"].startswith("deserialize")
    assert res.summary["pipelines"]["cloud_filter"]["messages"] == 2
    assert res.summary["pipelines"]["cloud_filter"]["skipped_malformed"] == 1
    assert json.loads(res.summary_path.read_text()) == res.summary

    counts = _topic_counts(res.output_bag)
    assert counts == {"/lidar/points": 3, "/camera/image_raw": 3, "/lidar/points_filtered": 2}
    store = get_typestore()
    with AnyReader([res.output_bag], default_typestore=store) as reader:
        conn = [c for c in reader.connections if c.topic == "/lidar/points_filtered"]
        stamps, clouds = [], []
        for c, t, raw in reader.messages(connections=conn):
            clouds.append(pointcloud_to_xyz(reader.deserialize(raw, c.msgtype)))
            stamps.append(t)
    assert stamps == [1_000_000_000, 1_100_000_000]
    # range_min 1 m (config/perception.yaml) drops the 0.2 m point; NaN dropped
    assert np.array_equal(clouds[0], np.array([[5, 0, 0], [10, 1, 0]], np.float32))


@pytest.mark.parametrize("crafted_bag", [StoragePlugin.SQLITE3], indirect=True)
def test_replay_reads_sqlite3_bags_and_writes_results_only(crafted_bag: Path, tmp_path: Path) -> None:
    res = replay_bag(crafted_bag, tmp_path / "out", ["cloud_filter"], copy_inputs=False, progress=False)
    assert _topic_counts(res.output_bag) == {"/lidar/points_filtered": 2}


def test_replay_statistics_only_without_output_bag(crafted_bag: Path, tmp_path: Path) -> None:
    res = replay_bag(crafted_bag, tmp_path / "out", [], write_bag=False, progress=False)
    assert res.output_bag is None and res.summary["pipelines"] == {}
    assert not (tmp_path / "out" / "bag").exists()


def test_replay_of_real_luminar_bag(assets: Path, tmp_path: Path) -> None:
    bag = assets / "bags" / "embag_luminar_ros2"
    topics = {"input_topic": "/luminar_pointcloud", "output_topic": "/luminar_pointcloud_filtered"}
    overrides = {f"cloud_filter.{k}": v for k, v in topics.items()}  # as a robot's params file would
    res = replay_bag(bag, tmp_path / "out", ["cloud_filter"], overrides=overrides, progress=False)
    lum = res.summary["topics"]["/luminar_pointcloud"]
    assert lum["count"] == 5 and "malformed" not in lum
    assert 30_000 < lum["points"]["mean"] < 40_000
    assert 5 < lum["points"]["mean_range_m"] < 150
    assert _topic_counts(res.output_bag) == {"/luminar_pointcloud": 5, "/luminar_pointcloud_filtered": 5}


def test_replay_output_bag_reads_with_the_mcap_reader(crafted_bag: Path, tmp_path: Path) -> None:
    from mcap_ros2.reader import read_ros2_messages

    res = replay_bag(crafted_bag, tmp_path / "out", ["cloud_filter"], progress=False)
    mcap_file = next(res.output_bag.glob("*.mcap"))
    filtered = list(read_ros2_messages(str(mcap_file), topics=["/lidar/points_filtered"]))
    assert len(filtered) == 2 and filtered[0].ros_msg.width == 2


def test_cli_replay_missing_bag_exits_2_with_a_message(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "perception_pkg.cli.main",
            "replay",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "bag not found" in proc.stderr


def test_cli_replay_unknown_pipeline_exits_2(crafted_bag: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "perception_pkg.cli.main",
            "replay",
            str(crafted_bag),
            "--out",
            str(tmp_path / "o"),
            "--pipelines",
            "teleport",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "unknown pipeline 'teleport'" in proc.stderr


def test_replay_feeds_pipeline_outputs_to_later_pipelines(
    crafted_bag: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on a live graph: a pipeline after cloud_filter sees /lidar/points_filtered, which the bag lacks."""
    from dataclasses import dataclass

    from perception_pkg import pipelines
    from perception_pkg.pipelines.base import Job, Pipeline, Port

    seen: list[int] = []

    @dataclass(frozen=True)
    class DownstreamSettings:
        pass

    class Downstream(Pipeline):
        name = "downstream"

        def __init__(self, types) -> None:
            super().__init__(types)
            self.settings = DownstreamSettings()
            self.inputs = [Port("cloud", "/lidar/points_filtered", CLOUD)]
            self.outputs = [Port("out", "/lidar/points_downstream", CLOUD)]

        def accept(self, key: str, msg, now_s: float) -> list[Job]:
            seen.append(round(now_s * 1e9))
            return super().accept(key, msg, now_s)

        def run(self, job: Job, wanted=None):
            return [("out", job.msg)]

    spec = pipelines.PipelineSpec("downstream", DownstreamSettings, lambda s, types, live: Downstream(types))
    monkeypatch.setitem(pipelines.PIPELINES, "downstream", spec)
    res = replay_bag(crafted_bag, tmp_path / "out", ["cloud_filter", "downstream"], progress=False)
    counts = _topic_counts(res.output_bag)
    # two well-formed clouds are filtered (the truncated one is counted as malformed) and passed on
    assert seen == [1_000_000_000, 1_100_000_000]
    assert counts["/lidar/points_downstream"] == 2 == counts["/lidar/points_filtered"]
    assert res.summary["pipelines"]["downstream"]["messages"] == 2


# -- damaged bags and Ctrl-C ----------------------------------------------------------------------
def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``perception ARGS`` in this process: (exit code, stderr); an uncaught exception fails the test."""
    from perception_pkg.cli.main import main

    code = main(list(args))
    return code, capsys.readouterr().err


def test_cli_replay_of_a_cut_bag_reports_what_was_read_and_where_it_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bag = tmp_path / "bag"
    write_clouds(bag, 120)
    f = cut(bag, keep=storage_file(bag).stat().st_size // 2)
    code, err = _cli(
        capsys, "replay", str(bag), "--out", str(tmp_path / "out"), "--pipelines", "cloud_filter", "--quiet"
    )
    assert code == 0, err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    damage = summary["bag_damage"]
    n = damage["messages_read"]
    assert 50 <= n < 120 and damage["messages_expected"] == 120 and summary["complete"] is False
    assert damage["stopped_at"][0].startswith(f"{f.name}: byte ")
    assert summary["topics"]["/lidar/points"]["count"] == n
    assert summary["pipelines"]["cloud_filter"]["messages"] == n
    line = [ln for ln in err.splitlines() if ln.startswith("perception replay: damaged bag")]
    where, why = damage["stopped_at"][0], damage["open_error"]
    assert line == [
        f"perception replay: damaged bag: read {n} of 120 messages; stopped at {where}; "
        f"it does not open as it is ({why})"
    ]
    assert _topic_counts(tmp_path / "out" / "bag") == {"/lidar/points": n, "/lidar/points_filtered": n}


@pytest.mark.parametrize(
    "make",
    ["garbage.mcap", "garbage.db3", "metadata_only"],
)
def test_cli_replay_of_an_unreadable_bag_exits_2_with_one_line(
    tmp_path: Path, make: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if make == "metadata_only":
        bag = tmp_path / "bag"
        write_clouds(bag, 3)
        storage_file(bag).unlink()
    else:
        bag = tmp_path / make
        bag.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    code, err = _cli(capsys, "replay", str(bag), "--out", str(tmp_path / "out"), "--pipelines", "", "--quiet")
    assert code == 2
    lines = [ln for ln in err.splitlines() if "perception replay:" in ln]
    assert len(lines) == 1 and "nothing" in lines[0] and str(bag) in lines[0]
    assert not (tmp_path / "out").exists()  # a bag that cannot be read changes nothing


def test_ctrl_c_stops_replay_cleanly_with_a_summary_of_what_was_done(tmp_path: Path) -> None:
    import signal
    import time

    from perception_pkg.bag import open_bag

    bag, out = tmp_path / "bag", tmp_path / "out"
    n = 5000  # ~1.6 s of replay on an idle 2-core machine: long enough to be interrupted, quick to make
    write_clouds(bag, n, points=20)
    cmd = [sys.executable, "-m", "perception_pkg.cli.main", "replay", str(bag), "--out", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--pipelines", "cloud_filter", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (out / "bag" / "bag.mcap").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # well inside the run loop
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    read = summary["bag_messages_read"]
    assert summary["interrupted"] is True and summary["complete"] is False and 0 < read < n
    assert summary["bag_messages"] == n
    assert f"interrupted after {read} of {n} messages" in stderr
    assert summary["topics"]["/lidar/points"]["count"] == read
    done = summary["pipelines"]["cloud_filter"]["messages"]
    assert done == read == summary["topics"]["/lidar/points_filtered"]["count"]
    # the output bag is closed properly: its metadata counts exactly the messages it holds
    with open_bag(out / "bag") as reader:
        held = sum(1 for _ in reader.messages())
        assert reader.message_count == held == 2 * read
        assert reader.damage is None


def test_sigint_handler_is_restored_after_a_replay(crafted_bag: Path, tmp_path: Path) -> None:
    import signal

    before = signal.getsignal(signal.SIGINT)
    res = replay_bag(crafted_bag, tmp_path / "out", [], progress=False)
    assert signal.getsignal(signal.SIGINT) is before and res.interrupted is False
    assert res.summary["interrupted"] is False and res.summary["complete"] is True


def test_replay_counts_non_finite_model_outputs_as_errors_and_goes_on(tmp_path: Path) -> None:
    from helpers.models import toy_centernet

    card = toy_centernet(tmp_path / "model")
    store = get_typestore()
    types = MessageFactory.rosbags(store)
    with Writer(tmp_path / "in", version=8, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection("/camera/image_raw", IMAGE, typestore=store)
        for i, level in enumerate([40, 255, 60]):  # the bright frame makes the model's outputs NaN
            t = 1_000_000_000 + i * 100_000_000
            img = array_to_image(
                np.full((48, 64, 3), level, np.uint8), "rgb8", make_header(types, t, "cam"), types
            )
            w.write(conn, t, store.serialize_cdr(img, IMAGE))
    overrides = {"detection.model_card": str(card), "detection.backend": "onnxruntime"}
    res = replay_bag(tmp_path / "in", tmp_path / "out", ["detection"], overrides=overrides, progress=False)
    det = res.summary["pipelines"]["detection"]
    assert det["errors"] == 1 and det["messages"] == 2 and det["skipped_malformed"] == 0
    assert "toy_centernet: non-finite values at inference in output hm" in det["last_error"]
    assert res.summary["topics"]["/detection/detections_2d"]["count"] == 2  # nothing published for it


def test_a_cloud_with_integer_or_multi_count_coordinates_is_counted_malformed(tmp_path: Path) -> None:
    from perception_pkg.msgs import structured_to_pointcloud

    store = get_typestore()
    types = MessageFactory.rosbags(store)
    good = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    good["x"] = [2.0, 3.0, 4.0]
    uint8_x = np.zeros(3, dtype=[("x", "u1"), ("y", "f4"), ("z", "f4")])
    uint8_x["x"] = [2, 3, 4]
    two_x = np.zeros(3, dtype=[("x", "f4", (2,)), ("y", "f4"), ("z", "f4")])
    with Writer(tmp_path / "in", version=8, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection("/lidar/points", CLOUD, typestore=store)
        for i, pts in enumerate([good, uint8_x, two_x]):
            t = 1_000_000_000 + i * 100_000_000
            w.write(
                conn,
                t,
                store.serialize_cdr(structured_to_pointcloud(pts, make_header(types, t, "l"), types), CLOUD),
            )
    res = replay_bag(tmp_path / "in", tmp_path / "out", ["cloud_filter"], progress=False)
    cf = res.summary["pipelines"]["cloud_filter"]
    assert cf["messages"] == 1 and cf["skipped_malformed"] == 2 and cf["errors"] == 0
    assert res.summary["topics"]["/lidar/points"]["malformed"] == 2
