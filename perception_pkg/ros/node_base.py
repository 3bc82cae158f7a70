"""The pattern every perception node follows, and the node that runs a capability's pipeline.

- Parameters come from a YAML file (ROS params format), one declared parameter per field of the node's
  Settings classes, validated at start-up (params.py); an undeclared one stops start-up naming the
  closest valid name.
- Sensor input is handed to a worker thread through a one-item slot: the newest frame is processed,
  older unprocessed ones are dropped and counted (latest-frame semantics, bounded memory).
- Malformed input (MessageFormatError from the converters) is logged at a limited rate, counted and
  skipped; any other exception in processing is counted as an error. The node keeps running.
- diagnostic_msgs/DiagnosticArray on /diagnostics: input rate, latency p50/p99 (receipt to results
  published), received / processed / dropped / malformed / errors, last error, and the pipeline's own
  counters.

:class:`PipelineNode` subscribes a pipeline's inputs, calls the same ``accept``/``run`` that replay
calls (``perception_pkg.pipelines``), and publishes its outputs; on-demand outputs (markers, annotated
images) are built only while someone subscribes.
"""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

from perception_pkg import pipelines
from perception_pkg.msgs import MessageFormatError
from perception_pkg.msgs.factory import MessageFactory
from perception_pkg.pipelines.base import Job, Pipeline
from perception_pkg.ros.params import check_undeclared, declare_settings
from perception_pkg.ros.qos import qos_profile
from perception_pkg.runtime import LatestSlot, NodeStats
from perception_pkg.runtime.settings import NodeSettings

POLL_PERIOD_S = 0.02  # how often a pipeline's held frames are checked for an expired wait


class PerceptionNode(Node):
    """Base class: subclasses call ``subscribe_input`` once and implement ``process(msg)``."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.node_settings = ns = declare_settings(self, NodeSettings)
        self.input_qos = qos_profile(ns.input_reliability, ns.input_depth)
        self.output_qos = qos_profile(ns.output_reliability, ns.output_depth)
        self.log_throttle_s = ns.log_throttle_s
        self.stats = NodeStats(window=ns.stats_window)
        self._slot: LatestSlot[tuple[Any, float]] = LatestSlot()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(ns.diagnostics_period_s, self.publish_diagnostics)

    # --- subclass API ------------------------------------------------------------------------
    def subscribe_input(self, msg_type: type, topic: str) -> None:
        """Subscribe the main sensor input and start the worker thread that calls ``process``."""
        self.create_subscription(msg_type, topic, self._on_input, self.input_qos)
        self.start_worker()

    def start_worker(self) -> None:
        self._worker = threading.Thread(target=self._work, name=f"{self.get_name()}-worker", daemon=True)
        self._worker.start()

    def hand_over(self, item: Any, received_at: float) -> None:
        """Put an item in the slot for the worker; one replaced before it ran counts as dropped."""
        if self._slot.put((item, received_at)):
            self.stats.on_dropped()

    def process(self, msg: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_diagnostics(self) -> list[tuple[str, str]]:
        """Key/values appended to this node's /diagnostics status."""
        return []

    def skip_malformed(self, what: str, exc: Exception) -> None:
        self.stats.on_malformed(f"{what}: {exc}" if what else str(exc))
        self.get_logger().warning(
            f"skipped malformed input: {exc}", throttle_duration_sec=self.log_throttle_s
        )

    # --- machinery ---------------------------------------------------------------------------
    def _on_input(self, msg: Any) -> None:
        now = time.monotonic()
        self.stats.on_received(now)
        self.hand_over(msg, now)

    def _work(self) -> None:
        while not self._stop.is_set():
            item = self._slot.take(timeout=0.2)
            if item is None:
                continue
            msg, received_at = item
            try:
                self.process(msg)
            except MessageFormatError as exc:
                self.skip_malformed("", exc)
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
        pairs = snap.as_pairs() + self.extra_diagnostics()
        status.values = [KeyValue(key=k, value=v) for k, v in pairs]
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(arr)

    def destroy_node(self) -> None:
        self._stop.set()
        self._slot.close()
        if self._worker is not None:
            self._worker.join(timeout=2.0)
        super().destroy_node()


class PipelineNode(PerceptionNode):
    """A node that runs the pipeline registered as ``pipeline_name``; ``create_options`` go to the
    pipeline's ``create`` (e.g. a detector built by the application instead of from its card)."""

    pipeline_name: str

    def __init__(self, *, create_options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        spec = pipelines.get(self.pipeline_name)
        super().__init__(spec.name, **kwargs)
        settings = declare_settings(self, spec.settings)
        check_undeclared(self)
        types = MessageFactory.rclpy()
        self.pipeline: Pipeline = spec.create(settings, types, live=True, **(create_options or {}))
        self._pubs = {
            port.key: self.create_publisher(types.cls(port.msgtype), port.topic, self.output_qos)
            for port in self.pipeline.outputs
        }
        for i, port in enumerate(self.pipeline.inputs):
            qos = self.input_qos
            if port.depth is not None:
                qos = qos_profile(self.node_settings.input_reliability, max(port.depth, qos.depth))
            callback = partial(self._on_message, port.key, i == 0)
            self.create_subscription(types.cls(port.msgtype), port.topic, callback, qos)
        self.start_worker()
        # a pipeline may hold a frame for its partner (an image for its CameraInfo): release it once its
        # wait is over even when no further message arrives
        self.create_timer(POLL_PERIOD_S, self._poll)
        describe = getattr(self.pipeline, "describe", None)
        ins = ", ".join(p.topic for p in self.pipeline.inputs)
        outs = ", ".join(p.topic for p in self.pipeline.outputs)
        self.get_logger().info(f"{describe() + ': ' if describe else ''}{ins} -> {outs}")

    def _on_message(self, key: str, main: bool, msg: Any) -> None:
        now = time.monotonic()
        if main:
            self.stats.on_received(now)
        try:
            jobs = self.pipeline.accept(key, msg, now)
        except MessageFormatError as exc:
            self.skip_malformed(key, exc)
            return
        for job in jobs:
            self.hand_over(job, job.arrived if job.arrived is not None else now)

    def _poll(self) -> None:
        now = time.monotonic()
        for job in self.pipeline.poll(now):
            self.hand_over(job, job.arrived if job.arrived is not None else now)

    def _wanted(self, key: str) -> bool:
        return not self.pipeline.output(key).on_demand or self._pubs[key].get_subscription_count() > 0

    def process(self, job: Job) -> None:
        for key, msg in self.pipeline.run(job, self._wanted):
            self._pubs[key].publish(msg)

    def extra_diagnostics(self) -> list[tuple[str, str]]:
        return self.pipeline.diagnostics(time.monotonic())
