"""Host-side decoders: raw engine outputs -> boxes / keypoints / images in the network-input frame.

Each output format is selected by the card's ``decoder.type`` (see :mod:`.registry`), never guessed;
the formats live in :mod:`.detection` (CenterNet, RTM3D, YOLOX, YOLOv8 / YOLO11, DETR / RT-DETR),
:mod:`.pose` (heatmap argmax, integral, mass displacement, mixture, SimCC) and :mod:`.image`. Results
map back to camera pixels with ``result.transformed(prepared.transform.inverse())``.
"""

from perception_pkg.decoders.base import Decoder
from perception_pkg.decoders.nms import box_iou, nms
from perception_pkg.decoders.registry import DECODERS, build_decoder, validate_decoder
from perception_pkg.decoders.types import Detections, Keypoints

__all__ = [
    "DECODERS",
    "Decoder",
    "Detections",
    "Keypoints",
    "box_iou",
    "build_decoder",
    "nms",
    "validate_decoder",
]
