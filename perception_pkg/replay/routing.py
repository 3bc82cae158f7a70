"""Routing between a bag's topics and a pipeline's ports: no task logic, only names.

A pipeline names its inputs and outputs by key with configured topics (``~/x`` private to the node); a
bag has absolute topic names. :class:`RoutedPipeline` maps one onto the other and runs the pipeline's
``accept``/``run`` steps in bag order, exactly as the node runs them on a live graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from perception_pkg import pipelines as registry
from perception_pkg.msgs.factory import MessageFactory
from perception_pkg.pipelines.base import Pipeline, private_topic


class RoutedPipeline:
    """A pipeline as replay drives it: ``wants``, ``outputs_for``, ``on_message``, ``finish``."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.name = pipeline.name
        self._in = {(private_topic(p.topic, pipeline.name), p.msgtype): p.key for p in pipeline.inputs}
        self._out = {p.key: (private_topic(p.topic, pipeline.name), p.msgtype) for p in pipeline.outputs}

    def topic(self, key: str) -> str:
        """The bag topic of an input or output key."""
        for port in self.pipeline.inputs:
            if port.key == key:
                return private_topic(port.topic, self.pipeline.name)
        return self._out[key][0]

    def bind(self, available: list[tuple[str, str]]) -> None:
        """Tell the pipeline which of its inputs the recording (or an earlier pipeline) provides."""
        self.pipeline.inputs_available({key for tm, key in self._in.items() if tm in set(available)})

    def wants(self, topic: str, msgtype: str) -> bool:
        return (topic, msgtype) in self._in

    def outputs_for(self, topic: str) -> list[tuple[str, str]]:
        """(topic, msgtype) of every output this pipeline can write once an input topic is present."""
        return [self._out[p.key] for p in self.pipeline.outputs if self.pipeline.replay_wanted(p.key)]

    def on_message(self, topic: str, msg: Any, stamp_ns: int) -> list[tuple[str, Any]]:
        """Outputs (topic, message) after one input message; ``stamp_ns`` (bag time) is the clock."""
        key = self._in[(topic, msg.__msgtype__)]  # rosbags messages carry their type name
        outputs = self.pipeline.feed(key, msg, stamp_ns * 1e-9, self.pipeline.replay_wanted)
        return [(self._out[k][0], m) for k, m in outputs]

    def finish(self) -> list[tuple[str, Any]]:
        p = self.pipeline
        return [(self._out[k][0], m) for job in p.finish() for k, m in p.run(job, p.replay_wanted)]

    def counters(self) -> dict[str, str]:
        return dict(self.pipeline.diagnostics())


def routed(
    name: str, params: Mapping[str, Any] | None = None, types: MessageFactory | None = None, **options: Any
) -> RoutedPipeline:
    """Pipeline ``name`` as replay runs it, with settings from ``params`` (a node's parameters by name,
    validated) and ``options`` for its ``create`` (e.g. ``detector=``)."""
    spec = registry.get(name)
    settings = spec.settings_from(dict(params or {}))
    return RoutedPipeline(spec.create(settings, types or MessageFactory.rosbags(), live=False, **options))
