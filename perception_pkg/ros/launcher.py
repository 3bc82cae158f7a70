"""Run one or several perception nodes in one process (the Python stand-in for a composable
container): our Fast DDS profile for large messages, parameters from a YAML file, one executor thread
for every node's callbacks, clean shutdown on SIGINT/SIGTERM, and a clear message instead of a
traceback for a bad config.

Every callback of our nodes is cheap (copy a serialized message into a slot, cache a CameraInfo, pair
stamps); the heavy work runs on each node's own worker thread. So one single-threaded executor serves
all nodes: rclpy's MultiThreadedExecutor would add a Python thread pool that competes with the workers
for the GIL and hands each callback over between threads, for no parallelism (benchmarks/
bench_overload.py measures the node under overload).

Shutdown order matters: rclpy's own SIGINT handler shuts the context down at once, while a worker may
be half-way through a frame, whose publish() then fails ("publisher's context is invalid"). Here the
signal only sets a flag; the spin loop ends, every node's worker is stopped (it finishes its frame and
publishes nothing more), the nodes are destroyed, and only then the context is shut down.
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
    import threading

    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

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

    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    nodes = []
    executor = None
    try:
        try:
            for cls in classes:
                nodes.append(cls())
        except ConfigError as exc:
            print(f"perception: bad configuration: {exc}", file=sys.stderr)
            return 2
        executor = SingleThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
        try:
            while not stop.is_set() and rclpy.ok():
                executor.spin_once(timeout_sec=0.1)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        return 0
    finally:
        for node in nodes:  # workers first: no publish may race the context's shutdown
            node.stop_worker()
        if executor is not None:
            executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
