"""Pipelines that replay can run, each turning input messages into output messages.

A pipeline sees rosbags message objects (same field names as rclpy's), so it shares its core and
conversion code with the live node of the same capability. Later capabilities register here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from perception_pkg.msgs import MessageFactory, pointcloud_to_structured, structured_to_pointcloud
from perception_pkg.pointcloud import CloudFilter
from perception_pkg.replay.detection_pipeline import detection_pipeline
from perception_pkg.replay.pose_pipeline import make_pose_pipeline


class ReplayPipeline(Protocol):
    name: str

    def wants(self, topic: str, msgtype: str) -> bool:
        """Whether this pipeline consumes messages of this topic."""

    def outputs_for(self, topic: str) -> list[tuple[str, str]]:
        """(topic, msgtype) it will write for an input topic it wants."""

    def on_message(self, topic: str, msg: Any, stamp_ns: int) -> list[tuple[str, Any]]:
        """Output (topic, message) pairs for one input message."""


@dataclass
class CloudFilterPipeline:
    """The cloud_filter node's core on every PointCloud2 topic: writes <topic>_filtered."""

    types: MessageFactory
    cloud_filter: CloudFilter
    name: str = "cloud_filter"

    def wants(self, topic: str, msgtype: str) -> bool:
        return msgtype == "sensor_msgs/msg/PointCloud2" and not topic.endswith("_filtered")

    def outputs_for(self, topic: str) -> list[tuple[str, str]]:
        return [(f"{topic}_filtered", "sensor_msgs/msg/PointCloud2")]

    def on_message(self, topic: str, msg: Any, stamp_ns: int) -> list[tuple[str, Any]]:
        kept = self.cloud_filter.apply(pointcloud_to_structured(msg))
        return [(f"{topic}_filtered", structured_to_pointcloud(kept, msg.header, self.types, is_dense=True))]


def _cloud_filter(types: MessageFactory, params: dict[str, Any]) -> ReplayPipeline:
    return CloudFilterPipeline(types, CloudFilter.from_params(params))


# name -> factory(types, the node's ros__parameters from the config file); a factory may load models,
# so it runs only for enabled pipelines
PIPELINES: dict[str, Callable[[MessageFactory, dict[str, Any]], ReplayPipeline]] = {
    "cloud_filter": _cloud_filter,
    "detection": detection_pipeline,
    "pose": make_pose_pipeline,
}
