"""cloud_filter node: drops non-finite points, crops by range and box, optionally voxel down-samples.

Subscribes  input_topic   sensor_msgs/PointCloud2 (default /lidar/points)
Publishes   output_topic  sensor_msgs/PointCloud2 (default /lidar/points_filtered), same header, all
                          fields of the kept points, is_dense true.
The work and the parameters: :mod:`perception_pkg.pipelines.cloud_filter` (replay runs the same).
"""

from __future__ import annotations

from perception_pkg.ros.node_base import PipelineNode


class CloudFilterNode(PipelineNode):
    pipeline_name = "cloud_filter"


def main(args: list[str] | None = None) -> None:
    from perception_pkg.ros.launcher import run_nodes

    run_nodes(["cloud_filter"], ros_args=args)
