"""Helpers for tests that run real rclpy nodes in separate processes.

Never sleep for discovery: wait for the match (publisher/subscription counts) with a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

DISCOVERY_TIMEOUT_S = 15.0


@contextmanager
def ros_node(name: str) -> Iterator[Any]:
    """An rclpy node in its own context (so tests never share global rclpy state)."""
    import rclpy
    from rclpy.context import Context

    from perception_pkg.ros.dds import use_large_message_profile

    use_large_message_profile()
    ctx = Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node(name, context=ctx)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown(context=ctx)


def spin_until(node: Any, predicate: Callable[[], bool], timeout: float = DISCOVERY_TIMEOUT_S) -> bool:
    """Spin ``node`` until ``predicate()`` holds or ``timeout`` passes; returns the predicate."""
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return predicate()
            executor.spin_once(timeout_sec=0.05)
        return True
    finally:
        executor.remove_node(node)


def publish_until(
    node: Any,
    pub: Any,
    msg: Any,
    predicate: Callable[[], bool],
    timeout: float = DISCOVERY_TIMEOUT_S,
    period: float = 0.2,
) -> bool:
    """Publish ``msg`` every ``period`` s until ``predicate()`` holds.

    A publisher can see its subscriber matched before the subscriber has matched the publisher; a
    best-effort message sent in that window is lost. Re-sending an idempotent warm-up message until its
    result shows up is the reliable way to know the path is open, without sleeping.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pub.publish(msg)
        if spin_until(node, predicate, period):
            return True
    return predicate()


@contextmanager
def child_process(
    args: Sequence[str], env: dict[str, str] | None = None, *, full_env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """Run ``python args...`` in a child process; SIGINT then kill it on exit. Output is captured.
    ``env`` adds to this process's environment; ``full_env`` replaces it (e.g. without our Fast DDS
    profile, for a child on Fast DDS defaults: ``perception_pkg.ros.traffic.child_env("default")``)."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        env=full_env if full_env is not None else {**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    proc.lines = lines  # type: ignore[attr-defined]  # what it printed so far
    proc.reader = reader  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def output_of(proc: subprocess.Popen) -> str:
    """What the child printed so far (all of it once it has exited), for assertion messages."""
    reader = getattr(proc, "reader", None)
    if reader is not None:
        if proc.poll() is not None:
            reader.join(timeout=5)
        return "".join(proc.lines)  # type: ignore[attr-defined]
    if proc.poll() is None:
        return "<still running>"
    return proc.stdout.read() if proc.stdout else ""


def wait_for_line(proc: subprocess.Popen, text: str, timeout: float = DISCOVERY_TIMEOUT_S) -> bool:
    """Wait until the child (started by :func:`child_process`) printed a line starting with ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(line.startswith(text) for line in proc.lines):  # type: ignore[attr-defined]
            return True
        if proc.poll() is not None:
            proc.reader.join(timeout=5)  # type: ignore[attr-defined]
            return any(line.startswith(text) for line in proc.lines)  # type: ignore[attr-defined]
        time.sleep(0.02)
    return False


@contextmanager
def spun_node(node: Any) -> Iterator[Any]:
    """Spin ``node`` (already created, in its own context) on a thread, as `perception run` does (one
    single-threaded executor); on exit stop its worker, the executor, then destroy it."""
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        yield node
    finally:
        stop = getattr(node, "stop_worker", None)
        if stop is not None:
            stop()
        executor.shutdown()
        spinner.join(timeout=5)
        node.destroy_node()


def node_parameters(params: dict[str, Any]) -> list[Any]:
    """rclpy parameter overrides from a ``{name: value}`` dict."""
    from rclpy.parameter import Parameter

    return [Parameter(k, value=v) for k, v in params.items()]
