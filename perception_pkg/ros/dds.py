"""DDS set-up that has to happen before rclpy.init: our Fast DDS profile for large messages
(config/dds/fastdds_large_messages.xml: inputs over UDP with large socket buffers, outputs over shared
memory from a 64 MB segment; the file says why, README "Pub/sub across processes" shows the figures)."""

from __future__ import annotations

import os
from pathlib import Path

from perception_pkg.paths import config_dir

PROFILE_VARS = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def large_message_profile() -> Path:
    return config_dir() / "dds" / "fastdds_large_messages.xml"


def use_large_message_profile(env: dict[str, str] | None = None) -> dict[str, str]:
    """Point Fast DDS at our profile unless the user already chose one.

    Works on ``os.environ`` by default (call before rclpy.init: Fast DDS reads it once, when the first
    participant is created) or on a copy for a child process.
    """
    target = os.environ if env is None else env
    if not any(target.get(var) for var in PROFILE_VARS):
        path = str(large_message_profile())
        for var in PROFILE_VARS:
            target[var] = path
    return target
