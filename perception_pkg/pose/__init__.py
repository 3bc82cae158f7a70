"""Pose core: person boxes + image -> COCO keypoints (top-down, batched) or a bottom-up model; stamp
matching of images and detections. numpy only, no rclpy."""

from perception_pkg.pose.estimator import (
    PoseEstimator,
    PoseResult,
    as_boxes,
    default_pose_card,
    pose_scores,
)
from perception_pkg.pose.matcher import Match, MatchCounts, StampMatcher

__all__ = [
    "Match",
    "MatchCounts",
    "PoseEstimator",
    "PoseResult",
    "StampMatcher",
    "as_boxes",
    "default_pose_card",
    "pose_scores",
]
