"""A rosbags typestore that knows ROS 2 Jazzy's standard messages plus ours.

rosbags ships the standard message set but not vision_msgs or perception_msgs; we register them from
the same ``.msg`` files that the interface packages are built from, so bags and the wire agree.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg
from rosbags.typesys import get_typestore as _rosbags_typestore
from rosbags.typesys.store import Typestore

from perception_pkg.paths import repo_root

# source folder in ros2_ws/src -> ROS package name
_INTERFACE_PACKAGES = {"vision_msgs_subset": "vision_msgs", "perception_msgs": "perception_msgs"}


def _msg_dirs() -> dict[str, Path]:
    """Folder of .msg files per package: the checkout's ros2_ws first, then installed share dirs."""
    found: dict[str, Path] = {}
    repo = repo_root()
    if repo is not None:
        for folder, pkg in _INTERFACE_PACKAGES.items():
            msg_dir = repo / "ros2_ws" / "src" / folder / "msg"
            if msg_dir.is_dir():
                found[pkg] = msg_dir
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for pkg in _INTERFACE_PACKAGES.values():
        for prefix in prefixes:
            msg_dir = Path(prefix) / "share" / pkg / "msg"
            if pkg not in found and msg_dir.is_dir():
                found[pkg] = msg_dir
    return found


@lru_cache(maxsize=1)
def get_typestore() -> Typestore:
    """Jazzy typestore with vision_msgs (the subset we publish) and perception_msgs registered."""
    store = _rosbags_typestore(Stores.ROS2_JAZZY)
    dirs = _msg_dirs()
    missing = set(_INTERFACE_PACKAGES.values()) - set(dirs)
    if missing:
        raise FileNotFoundError(f"message definitions not found for {sorted(missing)}")
    types: dict = {}
    # vision_msgs first: perception_msgs refers to it
    for pkg in ("vision_msgs", "perception_msgs"):
        for msg_file in sorted(dirs[pkg].glob("*.msg")):
            name = f"{pkg}/msg/{msg_file.stem}"
            types.update(get_types_from_msg(msg_file.read_text(), name))
    store.register(types)
    return store
