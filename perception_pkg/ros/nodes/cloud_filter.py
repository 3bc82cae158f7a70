"""cloud_filter: drops non-finite points, crops by range and box, optionally voxel down-samples.

Subscribes  ~input  (sensor_msgs/PointCloud2, default /lidar/points)
Publishes   ~output (sensor_msgs/PointCloud2, default /lidar/points_filtered), same header, all fields
            of the kept points, is_dense true.
"""

from __future__ import annotations

from typing import Any

from sensor_msgs.msg import PointCloud2

from perception_pkg.msgs import (
    MessageFactory,
    MessageFormatError,
    pointcloud_to_structured,
    structured_to_pointcloud,
)
from perception_pkg.pointcloud import CloudFilter
from perception_pkg.ros.node_base import PerceptionNode
from perception_pkg.ros.params import ConfigError, declare


class CloudFilterNode(PerceptionNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("cloud_filter", **kwargs)
        input_topic = declare(self, "input_topic", "/lidar/points", "PointCloud2 to filter")
        output_topic = declare(self, "output_topic", "/lidar/points_filtered", "filtered PointCloud2")
        inf = float("inf")
        try:
            self.filter = CloudFilter(
                range_min=declare(self, "range_min", 0.0, "drop points closer than this (m)", minimum=0.0),
                range_max=declare(self, "range_max", inf, "drop points farther than this (m)"),
                box_min=tuple(declare(self, "box_min", [-inf, -inf, -inf], "crop box min x,y,z", length=3)),
                box_max=tuple(declare(self, "box_max", [inf, inf, inf], "crop box max x,y,z", length=3)),
                voxel_size=declare(self, "voxel_size", 0.0, "voxel edge (m); 0 keeps all", minimum=0.0),
            )
        except ValueError as exc:
            raise ConfigError(f"node 'cloud_filter': {exc}") from exc
        self._types = MessageFactory.rclpy()
        self._pub = self.create_publisher(PointCloud2, output_topic, self.output_qos)
        self.subscribe_input(PointCloud2, input_topic)

    def process(self, msg: PointCloud2) -> None:
        points = pointcloud_to_structured(msg)
        names = points.dtype.names or ()
        if not {"x", "y", "z"} <= set(names):
            raise MessageFormatError(
                "sensor_msgs/msg/PointCloud2", "fields", "x, y, z", ", ".join(names) or "none"
            )
        kept = self.filter.apply(points)
        self._pub.publish(structured_to_pointcloud(kept, msg.header, self._types, is_dense=True))


def main(args: list[str] | None = None) -> None:
    from perception_pkg.ros.launcher import run_nodes

    run_nodes(["cloud_filter"], ros_args=args)
