"""One pipeline per capability, shared by its ROS node and by ``perception replay``.

Each module holds the capability's Settings dataclass (the only source of its parameters' defaults and
docs) and its message-level frame processor (:class:`~perception_pkg.pipelines.base.Pipeline`).
:data:`PIPELINES` maps a name to its :class:`PipelineSpec`; nodes and replay look pipelines up here, so
a new capability registers once and runs in both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from perception_pkg.pipelines import cloud_filter, completion, detection, pose, weather
from perception_pkg.pipelines.base import Job, Pipeline, Port, private_topic
from perception_pkg.runtime.settings import NodeSettings, from_params, specs


@dataclass(frozen=True)
class PipelineSpec:
    """A capability: its Settings class and ``create(settings, types, live=...) -> Pipeline`` (which may
    load models, so it runs only for enabled pipelines)."""

    name: str
    settings: type
    create: Callable[..., Pipeline]

    def settings_from(self, params: Mapping[str, Any]) -> Any:
        """Settings from a node's parameter values (a params file section, flattened). The node-level
        parameters (QoS, diagnostics) are known but not part of the capability's settings."""
        node_params = [s.param for s in specs(NodeSettings)]
        # rclpy's per-topic QoS overrides concern a live graph only (a bag has no QoS)
        params = {k: v for k, v in params.items() if not k.startswith("qos_overrides.")}
        own = {k: v for k, v in params.items() if k not in node_params}
        from_params(NodeSettings, {k: v for k, v in params.items() if k in node_params}, self.name)
        return from_params(self.settings, own, self.name, also_known=node_params)


PIPELINES: dict[str, PipelineSpec] = {
    "cloud_filter": PipelineSpec("cloud_filter", cloud_filter.CloudFilterSettings, cloud_filter.create),
    "detection": PipelineSpec("detection", detection.DetectionSettings, detection.create),
    "pose": PipelineSpec("pose", pose.PoseSettings, pose.create),
    "completion": PipelineSpec("completion", completion.CompletionSettings, completion.create),
    "weather": PipelineSpec("weather", weather.WeatherSettings, weather.create),
}


def get(name: str) -> PipelineSpec:
    if name not in PIPELINES:
        raise KeyError(f"unknown pipeline '{name}'; known: {sorted(PIPELINES)}")
    return PIPELINES[name]


__all__ = ["PIPELINES", "Job", "Pipeline", "PipelineSpec", "Port", "get", "private_topic"]
