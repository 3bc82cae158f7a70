"""The node pattern, through the cloud_filter node: real rclpy across processes, diagnostics, bad input,
latest-frame drops, bad config."""

from __future__ import annotations

import array
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.ros_harness import child_process, output_of, publish_until, ros_node, spin_until

pytestmark = pytest.mark.ros

PARAMS = """
cloud_filter:
  ros__parameters:
    input_topic: /test/points
    output_topic: /test/points_filtered
    range_min: 1
    range_max: 50.0
    diagnostics_period_s: 0.2
    log_throttle_s: 0.0
"""


def _cloud(types, xyz: np.ndarray, stamp_ns: int):
    from perception_pkg.msgs import make_header, xyz_to_pointcloud

    header = make_header(types, stamp_ns, "lidar")
    return xyz_to_pointcloud(
        xyz.astype(np.float32), header, types, intensity=np.arange(len(xyz), dtype=np.float32)
    )


def _diag_values(msg) -> dict[str, str]:
    return {kv.key: kv.value for st in msg.status if st.name.endswith("cloud_filter") for kv in st.values}


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS)
    return path


def test_cloud_filter_node_in_another_process_filters_counts_bad_input_and_keeps_running(
    ros_domain: int, params_file: Path
) -> None:
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2, PointField

    from perception_pkg.msgs import MessageFactory, pointcloud_to_structured

    types = MessageFactory.rclpy()
    outputs: list = []
    diags: list = []
    args = [
        "-m",
        "perception_pkg.cli.main",
        "run",
        "--nodes",
        "cloud_filter",
        "--params-file",
        str(params_file),
    ]
    with ros_node("test_driver") as node, child_process(args) as child:
        pub = node.create_publisher(
            PointCloud2, "/test/points", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        )
        node.create_subscription(PointCloud2, "/test/points_filtered", outputs.append, 10)
        node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
        assert spin_until(
            node,
            lambda: (
                (pub.get_subscription_count() > 0 and node.count_publishers("/test/points_filtered") > 0)
                or child.poll() is not None
            ),
        ), output_of(child)
        assert child.poll() is None, output_of(child)
        warmup = _cloud(types, np.array([[2.0, 0, 0]]), 1_000_000_000)
        assert publish_until(node, pub, warmup, lambda: len(outputs) >= 1), output_of(child)
        assert spin_until(
            node,
            lambda: (
                diags and _diag_values(diags[-1])["processed"] == _diag_values(diags[-1])["received"] != "0"
            ),
            5,
        )
        base = int(_diag_values(diags[-1])["received"])
        outputs.clear()

        xyz = np.array([[5, 0, 0], [np.nan, 1, 1], [0.5, 0, 0], [60, 0, 0], [0, -20, 1]])
        pub.publish(_cloud(types, xyz, 1_700_000_000_250_000_000))

        # select by stamp: a warm-up cloud still in flight may land after the clear
        def ours() -> list:
            return [o for o in outputs if o.header.stamp.sec == 1700000000]

        assert spin_until(node, lambda: bool(ours())), output_of(child)
        out = ours()[0]
        assert (out.header.stamp.sec, out.header.stamp.nanosec, out.header.frame_id) == (
            1700000000,
            250000000,
            "lidar",
        )
        kept = pointcloud_to_structured(out)
        assert kept["intensity"].tolist() == [0.0, 4.0]
        assert np.allclose(np.stack([kept["x"], kept["y"], kept["z"]], 1), xyz[[0, 4]])
        assert out.is_dense

        # malformed: data shorter than width * point_step, and a cloud without z
        short = _cloud(types, np.ones((10, 3)), 2)
        short.data = array.array("B", bytes(short.data)[:40])
        no_z = PointCloud2(
            height=1,
            width=1,
            point_step=8,
            row_step=8,
            data=array.array("B", bytes(8)),
            fields=[
                PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                for i, n in enumerate("xy")
            ],
        )
        for bad in (short, no_z):
            pub.publish(bad)
            spin_until(node, lambda: False, 0.3)  # let the worker take it before the next one
        assert spin_until(
            node, lambda: diags and int(_diag_values(diags[-1]).get("malformed", 0)) >= 2, 10
        ), [(_diag_values(d)) for d in diags[-3:]]
        last = _diag_values(diags[-1])
        assert "PointCloud2" in last["last_malformed"] and last["last_error"] == ""
        assert diags[-1].status[0].level == DiagnosticStatus.WARN

        # still alive and still working
        pub.publish(_cloud(types, np.array([[3.0, 0, 0]]), 3_000_000_000))
        assert spin_until(node, lambda: any(o.header.stamp.sec == 3 for o in outputs)), output_of(child)
        assert child.poll() is None
        assert spin_until(node, lambda: int(_diag_values(diags[-1])["processed"]) >= base + 2, 5)
        final = _diag_values(diags[-1])
        assert int(final["received"]) == base + 4 and int(final["errors"]) == 0
        assert float(final["latency_p50_ms"]) > 0


def test_bad_config_stops_at_start_with_a_message_naming_the_parameter(
    ros_domain: int, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("cloud_filter:\n  ros__parameters:\n    range_max: far\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "perception_pkg.cli.main",
            "run",
            "--nodes",
            "cloud_filter",
            "--params-file",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "cloud_filter.range_max" in proc.stderr and "expected float" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("node", "typo", "closest"),
    [("cloud_filter", "range_mx: 3.0", "range_max"), ("detection", "score_treshold: 0.5", "score_threshold")],
)
def test_a_misspelt_parameter_stops_start_up_naming_it_and_the_closest_valid_name(
    ros_domain: int, tmp_path: Path, node: str, typo: str, closest: str
) -> None:
    bad = tmp_path / "typo.yaml"
    bad.write_text(f"{node}:\n  ros__parameters:\n    {typo}\n")
    cmd = [sys.executable, "-m", "perception_pkg.cli.main", "run", "--nodes", node, "--params-file", str(bad)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    name = typo.split(":")[0]
    assert proc.returncode == 2, proc.stderr
    assert f"'{node}.{name}'" in proc.stderr and f"did you mean '{closest}'" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_node_name_is_a_clear_error(ros_domain: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "perception_pkg.cli.main", "run", "--nodes", "detectorr"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "unknown node 'detectorr'" in proc.stderr


def test_slow_node_processes_newest_frame_and_counts_dropped_ones(ros_domain: int) -> None:
    from rclpy.executors import MultiThreadedExecutor
    from std_msgs.msg import Int32

    from perception_pkg.ros.node_base import PerceptionNode

    seen: list[int] = []

    class SlowNode(PerceptionNode):
        def __init__(self, **kw) -> None:
            super().__init__("slow_node", **kw)
            self.subscribe_input(Int32, "/test/counter")

        def process(self, msg: Int32) -> None:
            time.sleep(0.1)
            seen.append(msg.data)

    with ros_node("counter_pub") as pub_node:
        slow = SlowNode(context=pub_node.context)
        executor = MultiThreadedExecutor(context=pub_node.context)
        executor.add_node(slow)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        try:
            pub = pub_node.create_publisher(Int32, "/test/counter", 10)
            assert publish_until(pub_node, pub, Int32(data=-1), lambda: -1 in seen)
            for i in range(40):
                pub.publish(Int32(data=i))
                time.sleep(0.005)  # 200 Hz into a 10 Hz node
            # the newest frame always reaches the worker, whatever was dropped before it
            done = spin_until(
                pub_node, lambda: seen and seen[-1] == 39 and slow.stats.processed == len(seen), 10
            )
            snap = slow.stats.snapshot()
            assert done, (seen, snap)
            # 40 frames in 0.2 s against 0.1 s per frame: most are replaced unprocessed and counted
            assert snap.dropped >= 5 and len([v for v in seen if v >= 0]) <= 10, (seen, snap)
            assert snap.processed + snap.dropped == snap.received, snap
            assert seen == sorted(seen)
        finally:
            executor.shutdown()
            slow.destroy_node()


def _reliable(depth: int = 10):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)


def _cloud_node(context, **params):
    from helpers.ros_harness import node_parameters

    from perception_pkg.ros.nodes.cloud_filter import CloudFilterNode

    base = {"input_topic": "/live/points", "output_topic": "/live/filtered", "log_throttle_s": 0.0}
    return CloudFilterNode(context=context, parameter_overrides=node_parameters({**base, **params}))


def test_silence_warns_naming_the_topic_rates_decay_and_levels_describe_the_recent_window(
    ros_domain: int,
) -> None:
    """A camera that pauses is no longer invisible, and one malformed frame no longer leaves the node
    WARN forever: the level follows the last ``status_window_s``; totals stay counters."""
    from helpers.ros_harness import spun_node
    from sensor_msgs.msg import PointCloud2

    from perception_pkg.msgs import MessageFactory

    types = MessageFactory.rclpy()
    with (
        ros_node("live_driver") as driver,
        spun_node(
            _cloud_node(driver.context, diagnostics_period_s=0.1, input_timeout_s=0.5, status_window_s=1.0)
        ) as node,
    ):
        pub = driver.create_publisher(PointCloud2, "/live/points", _reliable())
        assert spin_until(driver, lambda: pub.get_subscription_count() > 0)
        stamp = [1_000_000_000]

        def stream(seconds: float) -> None:  # 20 Hz
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                stamp[0] += 50_000_000
                pub.publish(_cloud(types, np.array([[5.0, 0, 0]]), stamp[0]))
                spin_until(driver, lambda: False, 0.05)

        assert spin_until(driver, lambda: node.status()[0] == 1, 2)  # nothing yet, 0.5 s after start
        assert node.status()[1].startswith("no input on /live/points for "), node.status()[1]
        stream(1.5)
        level, message, values = node.status()
        assert (level, message) == (0, "ok") and 14 < float(dict(values)["input_rate_hz"]) < 26, values
        spin_until(driver, lambda: False, 0.8)  # the camera pauses
        level, message, values = node.status()
        assert level == 1 and message.startswith("no input on /live/points for "), message
        paused_rate = float(dict(values)["input_rate_hz"])
        assert paused_rate < 10, values  # decays: it was ~20 Hz
        spin_until(driver, lambda: False, 0.5)
        assert float(dict(node.status()[2])["input_rate_hz"]) < paused_rate

        bad = _cloud(types, np.ones((10, 3)), stamp[0] + 50_000_000)
        bad.data = array.array("B", bytes(bad.data)[:40])
        stamp[0] += 50_000_000
        pub.publish(bad)
        assert spin_until(driver, lambda: node.stats.snapshot().malformed == 1, 2)  # before the next frame
        stream(0.3)
        level, message, values = node.status()
        assert level == 1 and "malformed input (1)" in message and "PointCloud2" in message, message
        assert dict(values)["errors"] == "0" and dict(values)["last_error"] == ""  # not a processing error
        stream(1.3)  # the malformed frame is older than the 1 s window now
        level, message, values = node.status()
        assert (level, message) == (0, "ok"), message
        assert dict(values)["malformed"] == "1" and dict(values)["recent_malformed"] == "0"
        assert dict(values)["last_malformed"].startswith("sensor_msgs/msg/PointCloud2.data")


def test_pipeline_latency_is_published_per_frame_from_the_header_stamp(ros_domain: int) -> None:
    from helpers.ros_harness import spun_node
    from sensor_msgs.msg import PointCloud2
    from std_msgs.msg import Float64

    from perception_pkg.msgs import MessageFactory

    types = MessageFactory.rclpy()
    latencies: list[float] = []
    with ros_node("latency_driver") as driver, spun_node(_cloud_node(driver.context)) as node:
        driver.create_subscription(
            Float64, "/cloud_filter/debug/pipeline_latency_ms", lambda m: latencies.append(m.data), 10
        )
        pub = driver.create_publisher(PointCloud2, "/live/points", _reliable())
        assert spin_until(
            driver,
            lambda: (
                pub.get_subscription_count() > 0
                and driver.count_subscribers("/cloud_filter/debug/pipeline_latency_ms") >= 0
            ),
        )
        assert spin_until(
            driver, lambda: driver.count_publishers("/cloud_filter/debug/pipeline_latency_ms") > 0
        )

        def aged(ms: float):  # a cloud stamped ``ms`` before now (ROS time = wall clock here)
            return _cloud(types, np.array([[5.0, 0, 0]]), time.time_ns() - int(ms * 1e6))

        assert publish_until(driver, pub, aged(250.0), lambda: bool(latencies))
        latencies.clear()
        sent = time.monotonic()
        pub.publish(aged(250.0))
        assert spin_until(driver, lambda: bool(latencies), 5)
        waited_ms = (time.monotonic() - sent) * 1e3
        assert 250.0 <= latencies[0] <= 250.0 + waited_ms, (latencies, waited_ms)
        values = dict(node.status()[2])
        assert 250.0 <= float(values["pipeline_latency_p50_ms"]) < 250.0 + waited_ms + 50, values


def test_corrupt_cdr_is_counted_as_malformed_input_not_lost_in_rmw(ros_domain: int) -> None:
    from helpers.ros_harness import spun_node
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import PointCloud2

    from perception_pkg.msgs import MessageFactory

    types = MessageFactory.rclpy()
    outputs: list = []
    with ros_node("cdr_driver") as driver, spun_node(_cloud_node(driver.context)) as node:
        driver.create_subscription(PointCloud2, "/live/filtered", outputs.append, _reliable())
        pub = driver.create_publisher(PointCloud2, "/live/points", _reliable())
        assert publish_until(driver, pub, _cloud(types, np.array([[5.0, 0, 0]]), 1), lambda: bool(outputs))
        base = node.stats.snapshot()
        cloud = _cloud(types, np.ones((4, 3)), 2)
        raw = bytearray(serialize_message(cloud))
        at = raw.rfind(len(cloud.data).to_bytes(4, "little"), 0, len(raw) - len(cloud.data))
        raw[at : at + 4] = (2**31).to_bytes(4, "little")  # the data length: far beyond the buffer
        for corrupt in (bytes(raw), bytes(raw[:14])):  # a header, a sequence past the end; a cut header
            pub.publish(corrupt)
            spin_until(driver, lambda: False, 0.3)  # let the worker take it (latest-frame slot)
        pub.publish(_cloud(types, np.array([[6.0, 0, 0]]), 3))
        assert spin_until(driver, lambda: any(o.header.stamp.nanosec == 3 for o in outputs), 5)
        assert spin_until(driver, lambda: node.stats.snapshot().malformed >= base.malformed + 2, 5)
        snap = node.stats.snapshot()
        assert snap.received == base.received + 3 and snap.errors == 0
        assert snap.processed + snap.dropped + snap.malformed == snap.received
        assert "CDR" in snap.last_malformed or "header" in snap.last_malformed, snap.last_malformed


def _best_effort(depth: int = 10):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT)


def test_an_incompatible_publisher_gets_one_warning_naming_topic_policies_and_parameter(
    ros_domain: int, capfd: pytest.CaptureFixture[str]
) -> None:
    from helpers.ros_harness import spun_node
    from sensor_msgs.msg import PointCloud2

    seen: list[str] = []

    def warned() -> bool:
        seen.extend(capfd.readouterr().err.splitlines())
        return any("QoS mismatch" in line for line in seen)

    with (
        ros_node("qos_driver") as driver,
        spun_node(
            _cloud_node(driver.context, diagnostics_period_s=0.1, **{"input_qos.reliability": "reliable"})
        ) as node,
    ):
        driver.create_publisher(PointCloud2, "/live/points", _best_effort())  # a sensor_data driver
        assert spin_until(driver, warned, 10), seen
        spin_until(driver, lambda: False, 1.5)  # the periodic checks (10 Hz here) must not repeat it
        warned()
        assert node.status()[0] == 1  # and nothing arrives: silence is reported too
    lines = [line for line in seen if "QoS mismatch" in line]
    assert len(lines) == 1, lines
    for part in (
        "/live/points",
        "offers reliability BEST_EFFORT",
        "requests RELIABLE",
        "cloud_filter.input_qos.reliability",
        "qos_overrides./live/points.subscription.reliability",
    ):
        assert part in lines[0], (part, lines[0])


def test_auto_reliability_follows_a_best_effort_publisher_and_receives_from_it(
    ros_domain: int, capfd: pytest.CaptureFixture[str]
) -> None:
    from helpers.ros_harness import spun_node
    from rclpy.qos import ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2

    from perception_pkg.msgs import MessageFactory

    types = MessageFactory.rclpy()
    outputs: list = []
    with ros_node("auto_driver") as driver, spun_node(_cloud_node(driver.context)) as node:
        (inp,) = node._inputs
        assert inp.auto and inp.reliability == "reliable"  # no publisher yet: the ROS default
        driver.create_subscription(PointCloud2, "/live/filtered", outputs.append, _reliable())
        pub = driver.create_publisher(PointCloud2, "/live/points", _best_effort())
        cloud = _cloud(types, np.array([[5.0, 0, 0]]), 7)
        assert publish_until(driver, pub, cloud, lambda: bool(outputs), timeout=10)
        assert inp.reliability == "best_effort"
        assert inp.subscription.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    err = capfd.readouterr().err
    assert "goes from reliable to best_effort (input_qos.reliability: auto)" in err
    assert "QoS mismatch" not in err


def test_qos_overrides_pin_an_input_and_a_misspelt_one_names_the_closest(ros_domain: int) -> None:
    from helpers.ros_harness import spun_node
    from rclpy.qos import ReliabilityPolicy

    from perception_pkg.runtime.settings import ConfigError

    pinned = {"qos_overrides./live/points.subscription.reliability": "best_effort"}
    with ros_node("pin_driver") as driver, spun_node(_cloud_node(driver.context, **pinned)) as node:
        (inp,) = node._inputs
        assert not inp.auto and inp.subscription.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
        out = node._pubs["filtered"]
        assert out.qos_profile.reliability == ReliabilityPolicy.RELIABLE  # output_qos untouched
    typo = {"qos_overrides./live/pionts.subscription.reliability": "best_effort"}
    with ros_node("typo_driver") as driver, pytest.raises(ConfigError) as exc:
        _cloud_node(driver.context, **typo)
    assert "did you mean 'qos_overrides./live/points.subscription.reliability'" in str(exc.value)
