"""What a capability's pipeline is: message-level frame processing shared by its node and by replay.

A pipeline has named input and output :class:`Port` s (topic + message type) and works in two steps,
so that the node can keep its latest-frame semantics while replay runs the very same code:

- :meth:`Pipeline.accept` is cheap and runs where messages arrive (a subscription callback, or the
  replay loop): it caches calibration, pairs messages by stamp, and returns the *jobs* that are ready;
- :meth:`Pipeline.run` does the work of one job (decode, infer, build messages) and returns
  ``(output key, message)`` pairs. The node runs it on its worker thread (a job replaced before it ran is
  dropped and counted); replay runs every job in bag order.

Both raise :class:`~perception_pkg.msgs.MessageFormatError` for malformed input; the node and replay
count it as malformed and go on. Outputs flagged ``on_demand`` are built on a live graph only while
someone subscribes (markers, annotated images); ``debug`` ones (annotated images) are written into a
replay's bag only when the pipeline's settings ask for it (``replay_annotated``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from perception_pkg.msgs.factory import MessageFactory
from perception_pkg.msgs.header import stamp_to_ns


@dataclass(frozen=True)
class Port:
    """An input or output of a pipeline."""

    key: str  # stable name inside the pipeline: "image", "camera_info", "detections_2d", ...
    topic: str  # as configured; "~/x" is private to the node (replay expands it with the node's name)
    msgtype: str  # ROS type name, e.g. "sensor_msgs/msg/Image"
    on_demand: bool = False  # outputs: built only while someone subscribes (live)
    debug: bool = False  # outputs: a debug image, written by replay only with replay_annotated
    depth: int | None = None  # inputs: keep-last depth instead of the node's input_qos.depth
    latched: bool = False  # inputs: sent once and kept by the publisher (/tf_static): transient local


@dataclass
class Job:
    """One unit of work handed from :meth:`Pipeline.accept` to :meth:`Pipeline.run`."""

    msg: Any  # the main input message (an image or a cloud)
    partner: Any = None  # a paired message (e.g. the detections of this image), or None
    arrived: float | None = None  # when the main input arrived (monotonic s); latency is measured from it
    payload: Any = None  # whatever accept already decoded (so a malformed message fails in accept)


Wanted = Callable[[str], bool]


class Pipeline:
    """Base class: subclasses set ``name``, ``settings``, ``inputs`` (the first is the main input, the
    one whose messages are counted as received and whose backlog is dropped) and ``outputs``."""

    name: str
    settings: Any
    inputs: list[Port]
    outputs: list[Port]

    def __init__(self, types: MessageFactory) -> None:
        self.types = types

    # --- the two steps --------------------------------------------------------------------------
    def accept(self, key: str, msg: Any, now_s: float) -> list[Job]:
        """Jobs ready after message ``msg`` arrived on input ``key`` at ``now_s`` (seconds on the
        caller's clock: monotonic on a live graph, bag time in replay)."""
        return [Job(msg, arrived=now_s)]

    def run(self, job: Job, wanted: Wanted | None = None) -> list[tuple[str, Any]]:
        """``(output key, message)`` pairs of one job; ``wanted(key)`` says whether an on-demand output
        is needed (None: all of them)."""
        raise NotImplementedError

    def poll(self, now_s: float) -> list[Job]:
        """Jobs whose wait for a partner is over at ``now_s`` (a node calls it from a timer; replay at every
        message, in bag time)."""
        return []

    def finish(self) -> list[Job]:
        """Jobs still held at the end of a stream (replay calls it at the end of the bag)."""
        return []

    def inputs_available(self, keys: set[str]) -> None:
        """Replay says which inputs the recording has (a pipeline need not wait for a missing one)."""

    def diagnostics(self, now_s: float | None = None) -> list[tuple[str, str]]:
        """The pipeline's own counters, appended to the node's /diagnostics and replay's summary
        (``now_s``: the caller's clock, for counters that age)."""
        return []

    def feed(self, key: str, msg: Any, now_s: float, wanted: Wanted | None = None) -> list[tuple[str, Any]]:
        """``accept`` then ``run`` every job it made ready, in order: what replay does per message."""
        return [out for job in self.accept(key, msg, now_s) for out in self.run(job, wanted)]

    # --- helpers for both callers -----------------------------------------------------------------
    def input_key(self, topic: str, msgtype: str) -> str | None:
        """The input a (topic, type) feeds, or None."""
        for port in self.inputs:
            if port.topic == topic and port.msgtype == msgtype:
                return port.key
        return None

    def output(self, key: str) -> Port:
        for port in self.outputs:
            if port.key == key:
                return port
        raise KeyError(f"{self.name}: no output '{key}'")

    def replay_wanted(self, key: str) -> bool:
        """Replay writes every output but debug images, which only ``replay_annotated`` asks for."""
        return not self.output(key).debug or bool(getattr(self.settings, "replay_annotated", False))


def matched_jobs(matcher: Any, main: bool, msg: Any, now_s: float) -> list[Job]:
    """Hand a message to a :class:`~perception_pkg.pose.matcher.StampMatcher` by its header stamp
    (``main``: the frame, else its partner); the job of the pair it completes, if any."""
    stamp = stamp_to_ns(msg.header)
    add = matcher.add_image if main else matcher.add_detections
    match = add(stamp, msg, now_s)
    return [] if match is None else [Job(match.image, match.detections, arrived=match.arrived)]


def private_topic(topic: str, node: str, namespace: str = "") -> str:
    """``~/x`` -> ``<namespace>/<node>/x`` as rclpy expands it (bags have no node to expand it)."""
    if topic.startswith("~/"):
        return f"{namespace.rstrip('/')}/{node}/{topic[2:]}"
    return topic
