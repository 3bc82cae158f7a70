"""Detection core: image (+ camera model) -> 2D detections and RTM3D 3D boxes. No rclpy."""

from perception_pkg.detection.detector import (
    DetectionResult,
    Detector,
    default_detector_card,
)
from perception_pkg.detection.loader import load_detector, resolve_card

__all__ = [
    "DetectionResult",
    "Detector",
    "default_detector_card",
    "load_detector",
    "resolve_card",
]
