"""Run one or several perception nodes in one process (the Python stand-in for a composable
container): shared-memory DDS profile, parameters from a YAML file, a multi-threaded executor, clean
shutdown on SIGINT/SIGTERM, and a clear message instead of a traceback for a bad config.
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from perception_pkg.ros.dds import use_large_message_profile
from perception_pkg.ros.nodes import NODES

log = logging.getLogger("perception_pkg.launcher")


def load_node_class(name: str) -> type:
    if name not in NODES:
        raise KeyError(f"unknown node '{name}'; known: {sorted(NODES)}")
    module, cls = NODES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def run_nodes(
    names: Sequence[str],
    params_file: str | Path | None = None,
    ros_args: Sequence[str] | None = None,
) -> int:
    """Create the named nodes, spin them until shutdown; returns a process exit code."""
    use_large_message_profile()
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    from perception_pkg.ros.params import ConfigError

    args = ["perception"]
    if ros_args:
        args += list(ros_args)
    if params_file is not None:
        if not Path(params_file).is_file():
            print(f"perception: parameter file not found: {params_file}", file=sys.stderr)
            return 2
        if "--ros-args" not in args:
            args.append("--ros-args")
        args += ["--params-file", str(params_file)]
    try:
        classes = [load_node_class(n) for n in names]
    except KeyError as exc:
        print(f"perception: {exc.args[0]}", file=sys.stderr)
        return 2

    rclpy.init(args=args)
    nodes = []
    try:
        try:
            nodes = [cls() for cls in classes]
        except ConfigError as exc:
            print(f"perception: bad configuration: {exc}", file=sys.stderr)
            return 2
        executor = MultiThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
        signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        return 0
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
