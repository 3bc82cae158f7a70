"""Pose core: person boxes + image -> COCO keypoints (top-down, batched) or a bottom-up model; stamp
matching of images and detections; the COCO-17 tables (:mod:`.coco17`). numpy only, no rclpy.

Names are resolved on first use (PEP 562), so ``perception_pkg.pose.coco17`` can be imported by the
floors below the pose core (decoders, messages) without importing the estimator.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PoseEstimator": "estimator",
    "PoseResult": "estimator",
    "as_boxes": "estimator",
    "default_pose_card": "estimator",
    "pose_scores": "estimator",
    "Match": "matcher",
    "MatchCounts": "matcher",
    "StampMatcher": "matcher",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'perception_pkg.pose' has no attribute {name!r}")
    return getattr(importlib.import_module(f"perception_pkg.pose.{module}"), name)
