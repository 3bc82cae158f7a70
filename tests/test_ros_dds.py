"""Large messages across processes with our Fast DDS profile (config/dds/fastdds_large_messages.xml) on
our side only: publishers and consumers in these tests run on Fast DDS defaults, as camera and LiDAR
drivers, RViz and recorders do. Payloads are checked byte for byte (perception_pkg.ros.traffic).

With the profile shipped before (shared memory, 16 MB segment), a best-effort 1080p frame from a default
publisher arrived 1 time in 9 and a 500 k-point cloud never (benchmarks/bench_pubsub.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers.ros_harness import child_process, output_of, wait_for_line

from perception_pkg.detection import default_detector_card
from perception_pkg.ros.traffic import Shape, child_env, publisher_args

pytestmark = pytest.mark.ros


def _subscriber_args(topic: str, shape: str, count: int, out: Path, *extra: str) -> list[str]:
    return [
        "-m",
        "perception_pkg.ros.traffic",
        "subscribe",
        "--topic",
        topic,
        "--shape",
        shape,
        "--count",
        str(count),
        "--seconds",
        "60",
        "--reliability",
        "best_effort",
        "--out",
        str(out),
        *extra,
    ]


def _result(child, out: Path) -> dict:
    """The summary of a subscriber child: SIGINT makes it stop receiving and write it."""
    import signal

    if child.poll() is None:
        child.send_signal(signal.SIGINT)
    child.wait(timeout=30)
    assert out.is_file(), output_of(child)
    return json.loads(out.read_text())


def test_a_best_effort_1080p_frame_from_a_default_publisher_arrives_intact(
    ros_domain: int, tmp_path: Path
) -> None:
    """The case that failed: our profile on the subscriber only, the publisher on defaults.

    Best effort over UDP has no retransmission: a 6.2 MB frame is ~95 fragments that must all fit the
    socket's receive buffer, which the kernel caps at net.core.rmem_max (4 MiB on CI machines). On a
    loaded machine a frame can still be lost there, so the bar is most frames (the old profile
    delivered 1 in 9), each byte-exact; the reliable path must deliver every frame (the next test)."""
    out = tmp_path / "sub.json"
    shape = Shape.parse("1920x1080")
    pub = publisher_args("/t/large", shape, rate=5, count=6, reliability="best_effort")
    with child_process(_subscriber_args("/t/large", "1920x1080", 6, out), full_env=child_env("ours")) as sub:
        assert wait_for_line(sub, "ready"), output_of(sub)
        with child_process(pub, full_env=child_env("default")) as publisher:
            assert wait_for_line(publisher, "sent", 60), output_of(publisher)
        got = _result(sub, out)
    assert got["received"] >= 4 and got["intact"] == got["received"], got


PARAMS = """
cloud_filter:
  ros__parameters:
    input_topic: /t/points
    output_topic: /t/points_filtered
    range_min: 0.0
    range_max: 1000.0
    box_min: [-1000.0, -1000.0, -1000.0]
    box_max: [1000.0, 1000.0, 1000.0]
detection:
  ros__parameters:
    image_topic: /t/image_raw
    backend: onnxruntime
    threads: 1
    lift_3d: false
    score_threshold: 1.0   # nothing drawn: the annotated frame is the input, in BGR
"""


def _diag(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


@pytest.mark.slow
@pytest.mark.skipif(not default_detector_card().is_file(), reason="shipped detector absent")
def test_1080p_frames_and_1m_point_clouds_cross_both_ways_between_our_nodes_and_default_peers(
    ros_domain: int, tmp_path: Path
) -> None:
    """Drivers on defaults -> `perception run` (cloud_filter + detection, our profile) -> consumers on
    defaults: every frame sent reaches the nodes' `received` intact (checked through their outputs),
    and every result they publish (a filtered 1 M-point cloud, an annotated 1080p frame) reaches the
    consumers intact."""
    from helpers.ros_harness import ros_node, spin_until

    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    n = 5
    node_args = ["-m", "perception_pkg.cli.main", "run", "--nodes", "cloud_filter,detection"]
    node_args += ["--params-file", str(params)]
    clouds, images = tmp_path / "clouds.json", tmp_path / "images.json"
    diags: dict[str, dict[str, str]] = {}
    with (
        child_process(node_args) as node,
        ros_node("large_probe") as probe,
    ):
        from diagnostic_msgs.msg import DiagnosticArray

        from perception_pkg.ros.traffic import diagnostic_values

        def on_diag(msg) -> None:
            for name in ("/cloud_filter", "/detection"):
                got = diagnostic_values(msg, name)
                if got is not None:
                    diags[name] = got[2]

        probe.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
        assert spin_until(probe, lambda: len(diags) == 2 or node.poll() is not None, 60), output_of(node)
        sub_cloud = _subscriber_args("/t/points_filtered", "1000000pts", n, clouds, "--wait-for-publisher")
        sub_image = _subscriber_args("/detection/annotated", "1920x1080", n, images, "--bgr")
        with (
            child_process(sub_cloud, full_env=child_env("default")) as c_sub,
            child_process([*sub_image, "--wait-for-publisher"], full_env=child_env("default")) as i_sub,
        ):
            assert wait_for_line(c_sub, "ready") and wait_for_line(i_sub, "ready"), output_of(i_sub)
            cloud_pub = publisher_args("/t/points", Shape.parse("1Mpts"), rate=2, count=n)
            image_pub = publisher_args("/t/image_raw", Shape.parse("1920x1080"), rate=2, count=n)
            default = child_env("default")
            with (
                child_process(cloud_pub, full_env=default) as p1,
                # reliable, as camera drivers default to: best effort may lose a frame in the kernel's
                # receive buffer on a loaded machine (see the test above) and this test counts every one
                child_process(image_pub, full_env=default) as p2,
            ):
                assert wait_for_line(p1, "sent", 90) and wait_for_line(p2, "sent", 90), output_of(p1)
            # every frame received is accounted for (processed or replaced in the slot), then the
            # results still in flight land
            assert spin_until(
                probe,
                lambda: (
                    all(int(d["processed"]) + int(d["dropped"]) == int(d["received"]) for d in diags.values())
                    and all(int(d["received"]) == n for d in diags.values())
                ),
                30,
            ), json.dumps(diags)
            spin_until(probe, lambda: False, 1.5)
            got_clouds, got_images = _result(c_sub, clouds), _result(i_sub, images)
        assert node.poll() is None, output_of(node)
    for name in ("/cloud_filter", "/detection"):
        d = diags[name]
        assert int(d["received"]) == n and int(d["malformed"]) == 0 and int(d["errors"]) == 0, (name, d)
    assert got_clouds["intact"] == got_clouds["received"] == int(diags["/cloud_filter"]["processed"]) >= 1
    assert got_images["intact"] == got_images["received"] == int(diags["/detection"]["processed"]) >= 1
    print(json.dumps({"clouds": got_clouds["received"], "images": got_images["received"]}), file=sys.stderr)
