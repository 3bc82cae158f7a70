"""Host-side decoders: raw engine outputs -> boxes / keypoints / images in the network-input frame.

Each output format is selected by the card's ``decoder.type`` (see :mod:`.registry`), never guessed.
Results map back to camera pixels with ``result.transformed(prepared.transform.inverse())``.
"""

from perception_pkg.decoders.base import Decoder
from perception_pkg.decoders.centernet import CenterNetDecoder, heatmap_peaks, max_pool3x3
from perception_pkg.decoders.heatmap import HeatmapArgmaxDecoder
from perception_pkg.decoders.image import ImageDecoder, RawDecoder
from perception_pkg.decoders.nms import box_iou, nms
from perception_pkg.decoders.pose_argmax import argmax_decode
from perception_pkg.decoders.pose_geometry import heatmap_to_crop
from perception_pkg.decoders.registry import DECODERS, build_decoder, validate_decoder
from perception_pkg.decoders.types import Detections, Keypoints
from perception_pkg.decoders.yolov8 import Yolov8Decoder, Yolov8PoseDecoder
from perception_pkg.decoders.yolox import YoloxDecoder, yolox_grid

__all__ = [
    "DECODERS",
    "CenterNetDecoder",
    "Decoder",
    "Detections",
    "HeatmapArgmaxDecoder",
    "ImageDecoder",
    "Keypoints",
    "RawDecoder",
    "Yolov8Decoder",
    "Yolov8PoseDecoder",
    "YoloxDecoder",
    "argmax_decode",
    "box_iou",
    "build_decoder",
    "heatmap_peaks",
    "heatmap_to_crop",
    "max_pool3x3",
    "nms",
    "validate_decoder",
    "yolox_grid",
]
