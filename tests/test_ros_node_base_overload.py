"""The latest-frame promise under overload, short: a node fed at twice its measured capacity for a few
seconds (benchmarks/bench_overload.py is the 60 s version with latency percentiles, stalls and memory).

The invariants hold on a loaded machine: every frame the node receives ends in exactly one counter,
the frames lost before it (input keep-last-1) are all in the stamp-gap loss estimate, the newest frame
always reaches the worker and results never go back in time, the node does drop (it is overloaded) and
never goes silent for long while frames keep coming. (The code before received 7 of 178 clouds.)
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from helpers.ros_harness import child_process, output_of, ros_node, spin_until, wait_for_line

from perception_pkg.ros.traffic import (
    Arrivals,
    Payload,
    Shape,
    child_env,
    diagnostic_values,
    longest_gap_ms,
    make_message,
    publisher_args,
    set_stamp,
)

pytestmark = pytest.mark.ros

SETTINGS = {"voxel_size": 0.5, "range_min": 0.0, "range_max": 1000.0}
SHAPE = Shape.parse("100000pts")
PARAMS = """
cloud_filter:
  ros__parameters:
    input_topic: /overload/points
    output_topic: /overload/filtered
    voxel_size: 0.5
    range_min: 0.0
    range_max: 1000.0
    diagnostics_period_s: 0.2
"""


def _processing_s() -> float:
    from perception_pkg import pipelines
    from perception_pkg.msgs import MessageFactory
    from perception_pkg.pipelines.base import Job

    spec = pipelines.get("cloud_filter")
    types = MessageFactory.rclpy()
    pipeline = spec.create(spec.settings_from(SETTINGS), types, live=True)
    msg = make_message(SHAPE, types)
    msg.data = Payload(SHAPE).base.tobytes()
    set_stamp(msg, 1)
    times = []
    for _ in range(6):
        t = time.perf_counter()
        pipeline.run(Job(msg))
        times.append(time.perf_counter() - t)
    return float(np.median(times[1:]))


@pytest.mark.slow
def test_at_twice_capacity_every_frame_is_counted_once_and_the_newest_is_processed(
    ros_domain: int, tmp_path: Path
) -> None:
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2

    rate = 2.0 / _processing_s()
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    node_args = [
        "-m",
        "perception_pkg.cli.main",
        "run",
        "--nodes",
        "cloud_filter",
        "--params-file",
        str(params),
    ]
    outputs = Arrivals()
    diags: list[dict[str, str]] = []

    def on_diag(msg) -> None:
        got = diagnostic_values(msg, "/cloud_filter")
        if got is not None:
            diags.append(got[2])

    reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
    with ros_node("overload_probe") as probe, child_process(node_args) as node:
        probe.create_subscription(PointCloud2, "/overload/filtered", outputs, reliable)
        probe.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
        assert spin_until(probe, lambda: bool(diags) or node.poll() is not None, 30), output_of(node)
        pub_args = publisher_args("/overload/points", SHAPE, rate=rate, seconds=4.0, stamp="capture")
        with child_process(pub_args, full_env=child_env("default")) as pub:
            assert spin_until(probe, lambda: wait_for_line(pub, "sent", 0.05), 60), output_of(pub)
        report = dict(
            line.split() for line in output_of(pub).splitlines() if line.startswith(("sent", "last_"))
        )
        sent, last_stamp, t_end = (
            int(report["sent"]),
            int(report["last_stamp_ns"]),
            int(report["last_sent_ns"]),
        )

        def settled() -> bool:  # everything received is accounted for, and stays so
            d = diags[-1]
            counted = sum(int(d[k]) for k in ("processed", "dropped", "malformed", "errors"))
            return int(d["received"]) == counted and float(d["input_idle_s"] or 0) >= 1.0

        keys = ("received", "input_loss_estimate", "processed", "dropped")
        assert spin_until(probe, settled, 20), ({k: diags[-1].get(k) for k in keys}, sent)
        spin_until(probe, lambda: False, 0.5)  # the last result lands
        assert node.poll() is None, output_of(node)
    d = diags[-1]
    received, processed, dropped = int(d["received"]), int(d["processed"]), int(d["dropped"])
    assert int(d["malformed"]) == int(d["errors"]) == 0, d
    # input keep-last-1: a frame the executor had not taken yet when the next came is replaced inside DDS,
    # before the node could count it; the stamp-gap estimate must account for each of those. How many
    # that is depends on how starved the executor thread is (0-3 on a quiet machine, up to 29% with two
    # training jobs beside it); the code before received 7 of 178
    assert received >= 0.5 * sent, (d, sent)
    assert abs((sent - received) - int(d["input_loss_estimate"])) <= 2, (d, sent)
    assert processed == len(outputs), (processed, len(outputs))
    assert dropped >= received // 5, d  # it was overloaded: the slot replaced frames and said so
    out_rec, out_stamps = outputs.arrays()
    assert np.all(np.diff(out_stamps) > 0)  # never an older frame after a newer one
    assert out_stamps[-1] == last_stamp  # the newest frame always reaches the worker
    gap = longest_gap_ms(out_rec, int(out_rec[0]) + 1_000_000_000, t_end)
    assert gap < 1500, f"no result for {gap:.0f} ms while frames kept coming ({d})"
