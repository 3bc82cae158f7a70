"""Image -> network tensor, vectorised with OpenCV/numpy, each step with its exact inverse.

Geometry (:mod:`.geometry`) returns the :class:`AffineTransform` it applied, so decoded boxes and
keypoints map back to camera pixels with ``transform.inverse()``.
"""

from perception_pkg.preprocess.affine import AffineTransform
from perception_pkg.preprocess.geometry import (
    letterbox,
    letterbox_transform,
    stretch,
    topdown_crops,
    topdown_transform,
    unwarp_image,
    warp_crops,
)
from perception_pkg.preprocess.normalize import Normalizer, from_layout, to_layout
from perception_pkg.preprocess.pipeline import Prepared, Preprocessor

__all__ = [
    "AffineTransform",
    "Normalizer",
    "Prepared",
    "Preprocessor",
    "from_layout",
    "letterbox",
    "letterbox_transform",
    "stretch",
    "to_layout",
    "topdown_crops",
    "topdown_transform",
    "unwarp_image",
    "warp_crops",
]
