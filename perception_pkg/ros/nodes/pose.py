"""pose node: person keypoints (COCO-17) for every camera frame.

Subscribes  image_topic       sensor_msgs/Image, or CompressedImage with ``compressed: true``
            detections_topic  vision_msgs/Detection2DArray (boxes of class ``person_class``), matched
                              to the image by exact stamp with a bounded wait (``match_max_wait_s``)
                              and buffer (``match_buffer``). Not subscribed when the node runs a
                              detector itself (``detector_card``) or the pose card is bottom-up.
Publishes   output_topic      perception_msgs/PersonArray, header = the image's (stamp and frame)
            markers_topic     visualization_msgs/MarkerArray: skeletons in the image plane
            annotated_topic   sensor_msgs/Image bgr8 with skeletons drawn, only while subscribed

All crops of a frame go through the engine in one batched call. /diagnostics adds the matcher's counts
(matched, unmatched, expired, evicted) and people published to the common ones (malformed counts bad
images and detection arrays alike). The work and the parameters: :mod:`perception_pkg.pipelines.pose`
(replay runs the same).
"""

from __future__ import annotations

from perception_pkg.ros.node_base import PipelineNode


class PoseNode(PipelineNode):
    pipeline_name = "pose"


def main(args: list[str] | None = None) -> None:
    from perception_pkg.ros.launcher import run_nodes

    run_nodes(["pose"], ros_args=args)
