"""3D geometry in the KITTI camera frame, in one place (numpy/scipy, no ROS).

:mod:`.box3d` keypoints, projection, BEV and 3D IoU (exported here); :mod:`.camera` the calibration
(``CameraModel``) and its projection matrix; :mod:`.multibin` the Multi-Bin orientation code;
:mod:`.solver` the RTM3D keypoint solver; :mod:`.lift` decoded 9-keypoint detections -> 3D boxes.
"""

from perception_pkg.geometry3d.box3d import (
    BOX_FIELDS,
    bev_corners,
    bev_iou,
    box3d_corners,
    box3d_iou,
    box3d_keypoints,
    boxes_to_keypoints,
    convex_intersection_area,
    project_points,
    rotation_y_matrix,
)

__all__ = [
    "BOX_FIELDS",
    "bev_corners",
    "bev_iou",
    "box3d_corners",
    "box3d_iou",
    "box3d_keypoints",
    "boxes_to_keypoints",
    "convex_intersection_area",
    "project_points",
    "rotation_y_matrix",
]
