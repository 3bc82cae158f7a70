"""Shared fixtures: real sample assets (skip cleanly when absent) and an isolated ROS 2 domain."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from hypothesis import settings

from perception_pkg.paths import assets_dir

# CI replays the same examples every run (a red CI must mean a regression, not a newly drawn example);
# local runs keep exploring, and what they find is kept in .hypothesis/ and should become a test case.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

_domains = itertools.count()


@pytest.fixture(scope="session")
def assets() -> Path:
    """../shared/assets (or $PERCEPTION_ASSETS); skips the test when the real samples are absent."""
    path = assets_dir()
    if path is None:
        pytest.skip("real sample assets not found: set PERCEPTION_ASSETS or place them in ../shared/assets")
    return path


@pytest.fixture
def ros_domain(monkeypatch: pytest.MonkeyPatch) -> int:
    """A ROS_DOMAIN_ID of this test alone, discovery on loopback only, set in this process's env
    (child processes inherit it)."""
    pytest.importorskip("rclpy", reason="rclpy not installed (scripts/bootstrap.sh installs it)")
    domain = 1 + (os.getpid() * 7 + next(_domains)) % 200
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return domain
