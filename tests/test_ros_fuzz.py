"""The wire fuzz run, short (benchmarks/fuzz_wire.py sends 2,000 per kind): seeded malformed Image,
CompressedImage, CameraInfo and PointCloud2 (field faults and corrupt CDR) from another process to the
nodes in their own process; no crash, and every message ends in exactly one counter."""

from __future__ import annotations

from pathlib import Path

import pytest

from perception_pkg.detection import default_detector_card
from perception_pkg.ros.fuzz import KINDS, run_kind

pytestmark = pytest.mark.ros


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_malformed_messages_over_the_wire_are_each_counted_once_and_the_node_survives(
    ros_domain: int, tmp_path: Path, kind: str
) -> None:
    if kind != "cloud" and not default_detector_card().is_file():
        pytest.skip("shipped detector absent")
    r = run_kind(kind, 150, seed=12, workdir=str(tmp_path))
    assert r.sent == 150 and r.intents.get("field", 0) > 0 and r.intents.get("cdr", 0) > 0, r
    assert r.node_alive and r.exit_code == 0 and not r.bad_lines, r
    assert r.accounted, r
    assert r.counters["errors"] == 0, r  # malformed input is malformed, never a processing error
    assert r.counters["malformed"] > 0, r
