"""The pattern every perception node follows, and the node that runs a capability's pipeline.

- Parameters come from a YAML file (ROS params format), one declared parameter per field of the node's
  Settings classes, validated at start-up (params.py); an undeclared one stops start-up naming the
  closest valid name. QoS: ``input_qos.*`` / ``output_qos.*`` for all of a node's inputs and outputs,
  rclpy's ``qos_overrides.<topic>.<subscription|publisher>.<policy>`` per topic on top.
- Sensor inputs are taken *serialized* (``raw=True``): the callback copies the CDR bytes, reads the
  header from them (serialized.py) and hands the frame to a worker thread through a one-item slot. The
  worker deserialises and processes the newest frame; older unprocessed ones are dropped and counted
  (latest-frame semantics, bounded memory), so a dropped frame costs a copy, never a deserialisation.
  Every frame the node receives ends in exactly one of processed / dropped / malformed / errors.
- Malformed input (MessageFormatError from the converters, or CDR that does not deserialise) is
  logged at a limited rate, counted and skipped; any other exception in processing is counted as an
  error. The node keeps running.
- diagnostic_msgs/DiagnosticArray on /diagnostics. The level describes the last ``status_window_s``
  seconds: ERROR after a processing error, WARN after malformed input or when the main input has been
  silent for ``input_timeout_s`` (or 5 frame periods), OK otherwise. Values: input rate and latency
  percentiles of that window (they decay when the input stops), the stamp-based pipeline latency,
  totals received / processed / dropped / malformed / errors, the input loss estimated from stamp
  gaps, the last malformed reason and the last error apart, and the pipeline's own counters.
- ``~/debug/pipeline_latency_ms`` (std_msgs/Float64): for every processed frame, the time from its
  header stamp to its results being published (as Autoware's nodes publish it).
- At start-up and whenever a publisher appears, each input's publishers' QoS is compared with the
  subscription's; an incompatible one gets one warning naming the topic, both policies and the
  parameter to change.
- ``stop_worker`` (called by ``destroy_node`` and by the launcher before the context goes) stops the
  worker first, so no result is published into a context that is shutting down.

:class:`PipelineNode` subscribes a pipeline's inputs, calls the same ``accept``/``run`` that replay
calls (``perception_pkg.pipelines``), and publishes its outputs; on-demand outputs (markers, annotated
images) are built only while someone subscribes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import QoSPolicyKind, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from std_msgs.msg import Float64

from perception_pkg import pipelines
from perception_pkg.msgs import MessageFormatError, stamp_to_ns
from perception_pkg.msgs.factory import MessageFactory
from perception_pkg.pipelines.base import Job, Pipeline
from perception_pkg.ros.params import check_undeclared, declare_settings
from perception_pkg.ros.qos import incompatibilities, qos_profile
from perception_pkg.ros.serialized import SerializedMessage, decode, has_leading_header
from perception_pkg.runtime import LatestSlot, NodeStats
from perception_pkg.runtime.settings import NodeSettings

LATENCY_TOPIC = "~/debug/pipeline_latency_ms"
# how often a pipeline that holds frames for a partner is asked for expired waits: half its wait, within
# these bounds (a 100 Hz timer alone cost an idle detection node 9% of a core here, 20 Hz 2%)
POLL_PERIOD_S = (0.01, 0.05)
OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels (rclpy spells them as bytes)


@dataclass
class _Input:
    """A subscribed input: its subscription (re-created when ``auto`` reliability changes), for the QoS
    check and the liveness warning."""

    key: str
    msg_type: type
    topic: str  # resolved
    depth: int
    main: bool
    auto: bool  # reliability follows the publishers
    reliability: str  # "reliable" | "best_effort": what the subscription requests now
    latched: bool = False  # transient-local (a /tf_static-like input)
    subscription: Any = None
    warned: set[tuple[str, str]] = field(default_factory=set)  # (publisher gid, policy) already reported

    @property
    def qos(self) -> QoSProfile:
        return self.subscription.qos_profile


def _stamp_ns(msg: Any) -> int | None:
    stamp = getattr(msg, "stamp_ns", None)
    if stamp is not None:
        return stamp
    header = getattr(msg, "header", None)
    return stamp_to_ns(header) if header is not None else None


class PerceptionNode(Node):
    """Base class: subclasses call ``subscribe_input`` once and implement ``process(msg)``."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.node_settings = ns = declare_settings(self, NodeSettings)
        self.output_qos = qos_profile(ns.output_reliability, ns.output_depth)
        self.log_throttle_s = ns.log_throttle_s
        self.stats = NodeStats(
            window=ns.stats_window, window_s=ns.status_window_s, pause_s=ns.input_timeout_s
        )
        self._slot: LatestSlot[tuple[Any, float, int | None]] = LatestSlot()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._inputs: list[_Input] = []
        self._started = time.monotonic()
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._latency_pub = self.create_publisher(Float64, LATENCY_TOPIC, self.output_qos)
        self.create_timer(ns.diagnostics_period_s, self._periodic)

    # --- subclass API ------------------------------------------------------------------------
    def subscribe_input(self, msg_type: type, topic: str) -> None:
        """Subscribe the main sensor input and start the worker thread that calls ``process``."""
        self.add_input("input", msg_type, topic, self.node_settings.input_depth, main=True)
        self.start_worker()

    def add_input(
        self, key: str, msg_type: type, topic: str, depth: int, *, main: bool, latched: bool = False
    ) -> Any:
        """Subscribe ``topic`` serialized, keep-last ``depth``, with the node's input reliability
        (``auto``: following the publishers, see NodeSettings) unless ``qos_overrides.<topic>.
        subscription.reliability`` pins it; messages reach :meth:`on_input` (the main input's lazily
        deserialised, see serialized.py; the others deserialised at once, being small)."""
        resolved = self.resolve_topic_name(topic)
        pinned = f"qos_overrides.{resolved}.subscription.reliability" in (self._parameter_overrides or {})
        mode = self.node_settings.input_reliability
        auto = mode == "auto" and not pinned
        inp = _Input(
            key, msg_type, resolved, depth, main, auto, "reliable" if mode == "auto" else mode, latched
        )
        if auto:
            inp.reliability = self._publishers_reliability(resolved) or "reliable"
        self._inputs.append(inp)
        self._subscribe(inp)
        if auto:  # show it where rclpy shows a pinned one (``ros2 param get``), and name it in hints
            name = f"qos_overrides.{resolved}.subscription.reliability"
            if not self.has_parameter(name):
                info = "auto: follows the publishers (input_qos.reliability); best_effort or reliable pins it"
                self.declare_parameter(name, "auto", ParameterDescriptor(description=info, read_only=True))
        self._check_qos(key)
        return inp.subscription

    def _subscribe(self, inp: _Input) -> None:
        lazy = inp.main and has_leading_header(inp.msg_type)
        callback = partial(self._on_serialized, inp.key, inp.msg_type, inp.main, lazy)
        events = SubscriptionEventCallbacks(
            incompatible_qos=lambda _info, k=inp.key: self._on_incompatible(k)
        )
        policies = [QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH]
        if not inp.auto:  # an auto input's reliability is ours to change: no override parameter for it
            policies.append(QoSPolicyKind.RELIABILITY)
        inp.subscription = self.create_subscription(
            inp.msg_type,
            inp.topic,
            callback,
            qos_profile(inp.reliability, inp.depth, latched=inp.latched),
            raw=True,
            event_callbacks=events,
            qos_overriding_options=QoSOverridingOptions(policies),
        )

    def _publishers_reliability(self, topic: str) -> str | None:
        """What an ``auto`` input should request: reliable when every publisher offers reliable, best
        effort when one does not, None without publishers."""
        infos = self.get_publishers_info_by_topic(topic)
        if not infos:
            return None
        reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
        return "reliable" if reliable else "best_effort"

    def start_worker(self) -> None:
        self._worker = threading.Thread(target=self._work, name=f"{self.get_name()}-worker", daemon=True)
        self._worker.start()

    def on_input(self, key: str, msg: Any, now: float, main: bool) -> None:
        """A message arrived (``now``: monotonic s). Default: hand the main input to the worker."""
        if main:
            self.hand_over(msg, now, _stamp_ns(msg))

    def hand_over(self, item: Any, received_at: float, stamp_ns: int | None = None) -> None:
        """Put an item in the slot for the worker; one replaced before it ran counts as dropped."""
        if self._slot.put((item, received_at, stamp_ns)):
            self.stats.on_dropped(now=received_at)

    def process(self, msg: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_diagnostics(self) -> list[tuple[str, str]]:
        """Key/values appended to this node's /diagnostics status."""
        return []

    def skip_malformed(self, what: str, exc: Exception) -> None:
        """Count ``exc`` as malformed input on input ``what`` ("" = the main input, from the worker)."""
        main = self._main_input()
        key = what or (main.key if main is not None else "")
        self.stats.on_malformed(f"{what}: {exc}" if what else str(exc), key=key)
        self.get_logger().warning(
            f"skipped malformed input: {exc}", throttle_duration_sec=self.log_throttle_s
        )

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # --- machinery ---------------------------------------------------------------------------
    def _on_serialized(self, key: str, msg_type: type, main: bool, lazy: bool, raw: bytes) -> None:
        now = time.monotonic()
        try:
            msg = SerializedMessage(raw, msg_type) if lazy else decode(raw, msg_type)
        except MessageFormatError as exc:
            if main:
                self.stats.on_received(now, key=key)
            else:
                self.stats.on_other_input(key)
            self.skip_malformed(key, exc)
            return
        if main:
            self.stats.on_received(now, _stamp_ns(msg), key)
        else:
            self.stats.on_other_input(key)
        try:
            self.on_input(key, msg, now, main)
        except MessageFormatError as exc:
            self.skip_malformed(key, exc)

    def _work(self) -> None:
        while not self._stop.is_set():
            item = self._slot.take(timeout=0.2)
            if item is None:
                continue
            msg, received_at, stamp_ns = item
            started = time.monotonic()
            try:
                self.process(msg)
            except MessageFormatError as exc:
                self.skip_malformed("", exc)
                continue
            except Exception as exc:  # a bug or a backend failure must not stop the node
                if self._stop.is_set():
                    return  # shutting down: the context may already be gone
                self.stats.on_error(f"{type(exc).__name__}: {exc}")
                self.get_logger().error(
                    f"processing failed: {type(exc).__name__}: {exc}",
                    throttle_duration_sec=self.log_throttle_s,
                )
                continue
            done = time.monotonic()
            pipeline_s = None
            if stamp_ns is not None and not self._stop.is_set():
                pipeline_s = (self.get_clock().now().nanoseconds - stamp_ns) / 1e9
                self._latency_pub.publish(Float64(data=pipeline_s * 1e3))
            self.stats.on_processed(done - received_at, done, pipeline_s, done - started)

    def _main_input(self) -> _Input | None:
        return next((i for i in self._inputs if i.main), None)

    def _on_incompatible(self, key: str) -> None:
        """rmw found a publisher this input cannot match: warn now; an ``auto`` input is re-created by
        the next periodic check (not from inside its own subscription's event)."""
        inp = next((i for i in self._inputs if i.key == key), None)
        if inp is not None and not inp.auto:
            self._check_qos(key)

    def _check_qos(self, key: str) -> None:
        """An ``auto`` input follows its publishers (its subscription re-created when what they offer
        changes); any other input gets one warning per publisher and policy that cannot deliver to it."""
        inp = next((i for i in self._inputs if i.key == key), None)
        if inp is None or inp.subscription is None:
            return
        if inp.auto:
            wanted = self._publishers_reliability(inp.topic)
            if wanted is not None and wanted != inp.reliability:
                self.get_logger().info(
                    f"input '{inp.key}' ({inp.topic}): its publishers offer {wanted}; the subscription "
                    f"goes from {inp.reliability} to {wanted} (input_qos.reliability: auto)"
                )
                self.destroy_subscription(inp.subscription)
                inp.reliability = wanted
                self._subscribe(inp)
            return
        for info in self.get_publishers_info_by_topic(inp.topic):
            gid = bytes(info.endpoint_gid).hex()
            for policy, offered, requested in incompatibilities(info.qos_profile, inp.qos):
                if (gid, policy) in inp.warned:
                    continue
                inp.warned.add((gid, policy))
                who = f"{info.node_namespace.rstrip('/')}/{info.node_name}"
                if policy == "reliability":
                    fix = (
                        f"set {self.get_name()}.input_qos.reliability: auto or {offered.lower()} (all "
                        f"inputs), or qos_overrides.{inp.topic}.subscription.reliability: {offered.lower()}"
                    )
                else:
                    fix = f"the publisher must offer {policy} {requested}"
                self.get_logger().warning(
                    f"QoS mismatch on {inp.topic} (input '{inp.key}'): publisher {who} offers {policy} "
                    f"{offered}, this node requests {requested}, so none of its messages will arrive; {fix}"
                )

    def _periodic(self) -> None:
        for inp in self._inputs:  # publishers that appeared since the last check
            self._check_qos(inp.key)
        self.publish_diagnostics()

    def status(self) -> tuple[int, str, list[tuple[str, str]]]:
        """(level 0/1/2 = OK/WARN/ERROR, message, values) of this node now; the level describes the
        recent window only."""
        now = time.monotonic()
        snap = self.stats.snapshot(now)
        problems: list[tuple[int, str]] = []
        if snap.recent_errors:
            problems.append((ERROR, f"processing failed: {snap.last_error}"))
        main = self._main_input()
        if main is not None:
            idle = snap.input_idle_s if snap.input_idle_s is not None else now - self._started
            period = snap.input_period_s
            timeout = max(self.node_settings.input_timeout_s, 5 * period if period else 0.0)
            if idle > timeout:
                problems.append((WARN, f"no input on {main.topic} for {idle:.1f} s"))
        if snap.recent_malformed:
            problems.append((WARN, f"malformed input ({snap.recent_malformed}): {snap.last_malformed}"))
        if problems:
            level = max(p[0] for p in problems)
            message = "; ".join(m for _, m in sorted(problems, key=lambda p: -p[0]))
        else:
            level, message = OK, "ok"
        return level, message, snap.as_pairs() + self.extra_diagnostics()

    def publish_diagnostics(self) -> None:
        level, message, pairs = self.status()
        status = DiagnosticStatus(
            name=f"{self.get_namespace().rstrip('/')}/{self.get_name()}",
            hardware_id="perception_pkg",
            level=bytes([level]),
            message=message,
        )
        status.values = [KeyValue(key=k, value=v) for k, v in pairs]
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(arr)

    def stop_worker(self, timeout: float = 5.0) -> None:
        """Stop the worker (it finishes the frame it is on and publishes nothing more)."""
        self._stop.set()
        self._slot.close()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=timeout)

    def destroy_node(self) -> None:
        self.stop_worker()
        super().destroy_node()


class PipelineNode(PerceptionNode):
    """A node that runs the pipeline registered as ``pipeline_name``; ``create_options`` go to the
    pipeline's ``create`` (e.g. a detector built by the application instead of from its card)."""

    pipeline_name: str

    def __init__(self, *, create_options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        spec = pipelines.get(self.pipeline_name)
        super().__init__(spec.name, **kwargs)
        settings = declare_settings(self, spec.settings)
        check_undeclared(self, qos_overrides=False)  # a misspelt name stops us before a model loads
        types = MessageFactory.rclpy()
        self.pipeline: Pipeline = spec.create(settings, types, live=True, **(create_options or {}))
        self._pubs = {
            port.key: self.create_publisher(
                types.cls(port.msgtype),
                port.topic,
                self.output_qos,
                qos_overriding_options=QoSOverridingOptions.with_default_policies(),
            )
            for port in self.pipeline.outputs
        }
        for i, port in enumerate(self.pipeline.inputs):
            depth = self.node_settings.input_depth
            if port.depth is not None:
                depth = max(port.depth, depth)
            self.add_input(
                port.key, types.cls(port.msgtype), port.topic, depth, main=i == 0, latched=port.latched
            )
        check_undeclared(self)  # after the entities: rclpy declares the qos_overrides.* they accept
        if type(self.pipeline).poll is not Pipeline.poll:  # it holds frames for a partner, with a bound
            wait = float(getattr(settings, "camera_info_wait_s", POLL_PERIOD_S[1] * 2))
            self.create_timer(min(max(wait / 2, POLL_PERIOD_S[0]), POLL_PERIOD_S[1]), self._poll)
        self.start_worker()
        describe = getattr(self.pipeline, "describe", None)
        ins = ", ".join(p.topic for p in self.pipeline.inputs)
        outs = ", ".join(p.topic for p in self.pipeline.outputs)
        self.get_logger().info(f"{describe() + ': ' if describe else ''}{ins} -> {outs}")

    def on_input(self, key: str, msg: Any, now: float, main: bool) -> None:
        # expired waits first: a malformed message raises out of accept, and must not take them along
        self._hand_jobs(self.pipeline.poll(now), now)
        self._hand_jobs(self.pipeline.accept(key, msg, now), now)

    def _poll(self) -> None:
        now = time.monotonic()
        self._hand_jobs(self.pipeline.poll(now), now)

    def _hand_jobs(self, jobs: list[Job], now: float) -> None:
        for job in jobs:
            arrived = job.arrived if job.arrived is not None else now
            self.hand_over(job, arrived, _stamp_ns(job.msg))

    def _wanted(self, key: str) -> bool:
        return not self.pipeline.output(key).on_demand or self._pubs[key].get_subscription_count() > 0

    def process(self, job: Job) -> None:
        outputs = self.pipeline.run(job, self._wanted)
        if self.stopping:  # shutting down: the results go nowhere, the context may be going
            return
        for key, msg in outputs:
            if isinstance(msg, SerializedMessage):  # an input passed through unchanged
                msg = msg.message()
            self._pubs[key].publish(msg)

    def extra_diagnostics(self) -> list[tuple[str, str]]:
        return self.pipeline.diagnostics(time.monotonic())
