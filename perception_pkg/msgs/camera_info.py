"""sensor_msgs/CameraInfo <-> :class:`~perception_pkg.geometry3d.camera.CameraModel`, the plain calibration
dataclass the pipelines use without ROS."""

from __future__ import annotations

from typing import Any

import numpy as np

from perception_pkg.geometry3d.camera import CameraModel
from perception_pkg.msgs._common import (
    bool_field,
    float_array,
    get_field,
    pack_floats,
    str_field,
    uint_field,
)
from perception_pkg.msgs.errors import MessageFormatError
from perception_pkg.msgs.factory import MessageFactory

_CAMERA_INFO = "sensor_msgs/msg/CameraInfo"


def camera_info_to_model(msg: Any) -> CameraModel:
    """Validated calibration from a ``sensor_msgs/CameraInfo``.

    Raises MessageFormatError when k/r/p do not have 9/9/12 finite values, d is not finite, or the
    focal lengths in K or in P are not positive (an all-zero K means an uncalibrated camera: nothing to
    project; a negative fx in P mirrors every projection, so 3D boxes would come out behind or beside
    the camera).
    """
    width = uint_field(msg, "width", _CAMERA_INFO)
    height = uint_field(msg, "height", _CAMERA_INFO)
    k = float_array(get_field(msg, "k", _CAMERA_INFO), _CAMERA_INFO, "k", 9).reshape(3, 3)
    d = float_array(get_field(msg, "d", _CAMERA_INFO), _CAMERA_INFO, "d")
    r = float_array(get_field(msg, "r", _CAMERA_INFO), _CAMERA_INFO, "r", 9).reshape(3, 3)
    p = float_array(get_field(msg, "p", _CAMERA_INFO), _CAMERA_INFO, "p", 12).reshape(3, 4)
    focals = (("k[0] (fx)", k[0, 0]), ("k[4] (fy)", k[1, 1]), ("p[0] (fx)", p[0, 0]), ("p[5] (fy)", p[1, 1]))
    for name, value in focals:
        if not value > 0:
            raise MessageFormatError(
                _CAMERA_INFO,
                name,
                "a positive focal length in pixels",
                float(value),
                "an all-zero K means the camera is not calibrated",
            )
    model = str_field(msg, "distortion_model", _CAMERA_INFO)
    header = get_field(msg, "header", _CAMERA_INFO)
    frame_id = str_field(header, "frame_id", _CAMERA_INFO, "header.frame_id")
    binning_x = uint_field(msg, "binning_x", _CAMERA_INFO)
    binning_y = uint_field(msg, "binning_y", _CAMERA_INFO)
    roi_msg = get_field(msg, "roi", _CAMERA_INFO)
    roi = (
        uint_field(roi_msg, "x_offset", _CAMERA_INFO, label="roi.x_offset"),
        uint_field(roi_msg, "y_offset", _CAMERA_INFO, label="roi.y_offset"),
        uint_field(roi_msg, "height", _CAMERA_INFO, label="roi.height"),
        uint_field(roi_msg, "width", _CAMERA_INFO, label="roi.width"),
        bool_field(roi_msg, "do_rectify", _CAMERA_INFO, label="roi.do_rectify"),
    )
    return CameraModel(width, height, k, d, r, p, model, frame_id, binning_x, binning_y, roi)


def _matrix(value: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape and arr.size != shape[0] * shape[1]:
        raise MessageFormatError(_CAMERA_INFO, name, f"{shape[0]}x{shape[1]} values", arr.shape)
    return arr.reshape(-1)


def model_to_camera_info(model: CameraModel, header: Any, types: MessageFactory) -> Any:
    """A ``sensor_msgs/CameraInfo`` of class ``types.CameraInfo``; ``header`` is used as given."""
    x_off, y_off, roi_h, roi_w, rectify = model.roi
    cls = types.CameraInfo
    return cls(
        header=header,
        height=int(model.height),
        width=int(model.width),
        distortion_model=str(model.distortion_model),
        d=pack_floats(cls, np.asarray(model.D, dtype=np.float64).reshape(-1), fixed=False),
        k=pack_floats(cls, _matrix(model.K, (3, 3), "k"), fixed=True),
        r=pack_floats(cls, _matrix(model.R, (3, 3), "r"), fixed=True),
        p=pack_floats(cls, _matrix(model.P, (3, 4), "p"), fixed=True),
        binning_x=int(model.binning_x),
        binning_y=int(model.binning_y),
        roi=types.RegionOfInterest(
            x_offset=int(x_off),
            y_offset=int(y_off),
            height=int(roi_h),
            width=int(roi_w),
            do_rectify=bool(rectify),
        ),
    )
