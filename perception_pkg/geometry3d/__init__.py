"""3D box geometry in the KITTI camera frame (pure numpy): keypoints, projection, BEV and 3D IoU."""

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
