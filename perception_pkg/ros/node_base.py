"""The pattern every perception node follows.

- Parameters come from a YAML file (ROS params format) and are validated at start-up (params.py).
- Sensor input is handed to a worker thread through a one-item slot: the newest frame is processed,
  older unprocessed ones are dropped and counted (latest-frame semantics, bounded memory).
- Malformed input (MessageFormatError from the converters) is logged at a limited rate, counted and
  skipped; any other exception in processing is counted as an error. The node keeps running.
- diagnostic_msgs/DiagnosticArray on /diagnostics: input rate, latency p50/p99 (receipt to results
  published), received / processed / dropped / malformed / errors, last error.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

from perception_pkg.msgs import MessageFormatError
from perception_pkg.ros.params import declare
from perception_pkg.ros.qos import declare_qos
from perception_pkg.runtime import LatestSlot, NodeStats


class PerceptionNode(Node):
    """Base class: subclasses call ``subscribe_input`` once and implement ``process(msg)``."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.input_qos = declare_qos(self, "input_qos", "best_effort", 1)
        self.output_qos = declare_qos(self, "output_qos", "reliable", 10)
        period = declare(
            self, "diagnostics_period_s", 1.0, "seconds between /diagnostics messages", minimum=0.05
        )
        window = declare(self, "stats_window", 100, "frames in the rate/latency window", minimum=2)
        self.log_throttle_s = declare(
            self, "log_throttle_s", 5.0, "at most one bad-input log line per this many seconds", minimum=0.0
        )
        self.stats = NodeStats(window=window)
        self._slot: LatestSlot[tuple[Any, float]] = LatestSlot()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(period, self.publish_diagnostics)

    # --- subclass API ------------------------------------------------------------------------
    def subscribe_input(self, msg_type: type, topic: str) -> None:
        """Subscribe the main sensor input and start the worker thread that calls ``process``."""
        self.create_subscription(msg_type, topic, self._on_input, self.input_qos)
        self._worker = threading.Thread(target=self._work, name=f"{self.get_name()}-worker", daemon=True)
        self._worker.start()

    def process(self, msg: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- machinery ---------------------------------------------------------------------------
    def _on_input(self, msg: Any) -> None:
        now = time.monotonic()
        self.stats.on_received(now)
        if self._slot.put((msg, now)):
            self.stats.on_dropped()

    def _work(self) -> None:
        while not self._stop.is_set():
            item = self._slot.take(timeout=0.2)
            if item is None:
                continue
            msg, received_at = item
            try:
                self.process(msg)
            except MessageFormatError as exc:
                self.stats.on_malformed(str(exc))
                self.get_logger().warning(
                    f"skipped malformed input: {exc}", throttle_duration_sec=self.log_throttle_s
                )
                continue
            except Exception as exc:  # a bug or a backend failure must not stop the node
                self.stats.on_error(f"{type(exc).__name__}: {exc}")
                self.get_logger().error(
                    f"processing failed: {type(exc).__name__}: {exc}",
                    throttle_duration_sec=self.log_throttle_s,
                )
                continue
            self.stats.on_processed(time.monotonic() - received_at)

    def publish_diagnostics(self) -> None:
        snap = self.stats.snapshot()
        status = DiagnosticStatus(
            name=f"{self.get_namespace().rstrip('/')}/{self.get_name()}",
            hardware_id="perception_pkg",
        )
        if snap.errors:
            status.level, status.message = DiagnosticStatus.ERROR, f"processing errors: {snap.last_error}"
        elif snap.malformed:
            status.level, status.message = DiagnosticStatus.WARN, f"malformed input: {snap.last_error}"
        else:
            status.level, status.message = DiagnosticStatus.OK, "ok"
        status.values = [KeyValue(key=k, value=v) for k, v in snap.as_pairs()]
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(arr)

    def destroy_node(self) -> None:
        self._stop.set()
        self._slot.close()
        if self._worker is not None:
            self._worker.join(timeout=2.0)
        super().destroy_node()
