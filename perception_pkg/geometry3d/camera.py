"""A camera's calibration as a plain dataclass (ROS CameraInfo conventions) and its projection matrix.

The 3D lift, the box overlays and the datasets use it without ROS; :mod:`perception_pkg.msgs.camera_info`
converts it to and from ``sensor_msgs/CameraInfo``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


@dataclass
class CameraModel:
    """Calibration of one camera, ROS conventions: K (3x3) intrinsics, D distortion coefficients for
    ``distortion_model``, R (3x3) rectification rotation, P (3x4) projection of the rectified image.
    ``roi`` is (x_offset, y_offset, height, width, do_rectify), all zero for the full image."""

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    R: np.ndarray
    P: np.ndarray
    distortion_model: str
    frame_id: str = ""
    binning_x: int = 0
    binning_y: int = 0
    roi: tuple[int, int, int, int, bool] = field(default=(0, 0, 0, 0, False))

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])


def projection_matrix(camera: CameraModel) -> NDArray[np.float64]:
    """The 3x4 P of the rectified image, or K [I | 0] when the CameraInfo leaves P empty."""
    P = np.asarray(camera.P, dtype=np.float64).reshape(3, 4)
    if not np.any(P[:, :3]):
        P = np.hstack([np.asarray(camera.K, dtype=np.float64).reshape(3, 3), np.zeros((3, 1))])
    return P
