"""`perception run` (ros/launcher.py): a clean stop under load.

rclpy's own SIGINT handler shut the context down while a worker was half-way through a frame, whose
publish then failed: "[ERROR] processing failed: RCLError: ... publisher's context is invalid" (3 of
4 stops logged it before the launcher stopped the workers first).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from helpers.ros_harness import child_process, output_of, wait_for_line

from perception_pkg.detection import default_detector_card
from perception_pkg.ros.traffic import Shape, child_env, publisher_args

pytestmark = pytest.mark.ros

PARAMS = """
detection:
  ros__parameters:
    image_topic: /stop/image_raw
    backend: onnxruntime
    threads: 1
    lift_3d: false
    diagnostics_period_s: 0.2
"""


@pytest.mark.slow
@pytest.mark.skipif(not default_detector_card().is_file(), reason="shipped detector absent")
@pytest.mark.parametrize("after_s", [1.5, 2.2])
def test_sigint_while_frames_are_processed_stops_cleanly_without_error_lines(
    ros_domain: int, tmp_path: Path, after_s: float
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    node_args = ["-m", "perception_pkg.cli.main", "run", "--nodes", "detection", "--params-file", str(params)]
    # 40 Hz into a node that needs tens of ms a frame: its worker is always busy
    pub_args = publisher_args("/stop/image_raw", Shape.parse("640x480"), rate=40, seconds=30)
    with child_process(node_args) as node:
        assert wait_for_line(node, "[INFO]", 60), output_of(node)
        with child_process(pub_args, full_env=child_env("default")) as pub:
            assert wait_for_line(pub, "ready", 30), output_of(pub)
            time.sleep(after_s)
            node.send_signal(signal.SIGINT)
            rc = node.wait(timeout=30)
    out = output_of(node)
    assert rc == 0, out
    bad = [ln for ln in out.splitlines() if "[ERROR]" in ln or "Traceback" in ln or "terminate called" in ln]
    assert not bad, out
