"""completion node: the objects of each LiDAR scan completed by SoftPoolNet.

Subscribes  cloud_topic   sensor_msgs/PointCloud2 (x, y, z)
            boxes_topic   vision_msgs/Detection3DArray, matched to the scan by exact stamp with a bounded
                          wait (``match_max_wait_s``) and buffer (``match_buffer``); '' = no boxes topic,
                          boxes from clustering the scan
            tf_topic      tf2_msgs/TFMessage (/tf_static) for boxes in another frame, where tf2_msgs is
                          installed (else ``extrinsics: config`` with ``boxes_to_lidar``)
Publishes   output_topic  sensor_msgs/PointCloud2 x, y, z, object_id in the scan's frame, its header
            markers_topic visualization_msgs/MarkerArray (completed points and boxes), while subscribed

All objects of a scan go through the engine in one batched call. /diagnostics adds objects completed,
skipped (too few points, class, score, max_objects), empty scans, NaN points, missing transforms and the
matcher's counts. The work and the parameters: :mod:`perception_pkg.pipelines.completion` (replay runs
the same).
"""

from __future__ import annotations

from perception_pkg.ros.node_base import PipelineNode


class CompletionNode(PipelineNode):
    pipeline_name = "completion"


def main(args: list[str] | None = None) -> None:
    from perception_pkg.ros.launcher import run_nodes

    run_nodes(["completion"], ros_args=args)
