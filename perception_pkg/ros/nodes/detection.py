"""detection node: camera frames in, 2D detections (and RTM3D 3D boxes with CameraInfo) out.

Subscribes  image_topic        sensor_msgs/Image, or sensor_msgs/CompressedImage with ``compressed: true``
                               (default /camera/image_raw; latest-frame processing, older frames dropped
                               and counted)
            camera_info_topic  sensor_msgs/CameraInfo (default /camera/camera_info); the newest one is
                               used for 3D when its frame_id and size match the image's
Publishes   ~/detections_2d    vision_msgs/Detection2DArray, every processed frame
            ~/detections_3d    vision_msgs/Detection3DArray in the camera optical frame, every processed
                               frame when the model has 3D heads (empty without usable CameraInfo)
            ~/markers          visualization_msgs/MarkerArray of the 3D boxes, while someone subscribes
            ~/annotated        sensor_msgs/Image bgr8 with boxes drawn, only while someone subscribes
All outputs carry the input image's header (stamp and frame), never now().

Bad input (unsupported encoding, truncated data, zero-size image, undecodable JPEG, malformed
CameraInfo) is counted as ``malformed`` in /diagnostics and skipped; frames processed without usable
CameraInfo are counted as ``no_camera_info`` / ``camera_info_mismatch``. A missing or unusable model card
stops the node at start-up with a ConfigError naming the card. The work and the parameters:
:mod:`perception_pkg.pipelines.detection` (replay runs the same).
"""

from __future__ import annotations

from typing import Any

from perception_pkg.detection import Detector
from perception_pkg.ros.node_base import PipelineNode


class DetectionNode(PipelineNode):
    """``detector`` replaces the card-built one (tests, or an application that builds its own)."""

    pipeline_name = "detection"

    def __init__(self, *, detector: Detector | None = None, **kwargs: Any) -> None:
        super().__init__(create_options={"detector": detector} if detector is not None else None, **kwargs)


def main(args: list[str] | None = None) -> None:
    from perception_pkg.ros.launcher import run_nodes

    run_nodes(["detection"], ros_args=args)
