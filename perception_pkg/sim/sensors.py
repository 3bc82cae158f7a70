"""The sensor rig: a pinhole camera and a 64-beam spinning LiDAR on a car, with fixed extrinsics.

Frames (all right-handed, metres):

- ``map``: the world. x along the road (the ego drives towards +x), y to the left, z up.
- ``base_link``: the ego car, on the ground below the rear axle; x forward, y left, z up.
- ``lidar``: 1.73 m above base_link (KITTI's HDL-64E mounting), axes as base_link.
- ``camera_optical``: 0.27 m ahead of the LiDAR, 1.65 m above the ground (KITTI cam), ROS optical
  convention: x right, y down, z forward (the viewing direction). Optionally pitched down.

Pixel convention (same as OpenCV, ROS CameraInfo and perception_msgs/Keypoint2D): the centre of the
top-left pixel is (0, 0); pixel (col, row) covers [col - 0.5, col + 0.5] x [row - 0.5, row + 0.5].
A camera point (X, Y, Z) projects to (fx X/Z + cx, fy Y/Z + cy). No lens distortion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from perception_pkg.sim.geometry import make_transform, rot_x


@dataclass(frozen=True)
class CameraSpec:
    width: int = 640
    height: int = 480
    hfov_deg: float = 77.3  # fx = 400 at 640 px, close to KITTI's field of view
    frame_id: str = "camera_optical"

    @property
    def fx(self) -> float:
        return (self.width / 2) / np.tan(np.radians(self.hfov_deg) / 2)

    @property
    def fy(self) -> float:
        return self.fx  # square pixels

    @property
    def cx(self) -> float:
        return (self.width - 1) / 2

    @property
    def cy(self) -> float:
        return (self.height - 1) / 2

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def P(self) -> np.ndarray:
        return np.hstack([self.K, np.zeros((3, 1))])

    def project(self, pts_cam: np.ndarray) -> np.ndarray:
        """(N, 3) camera-frame points -> (N, 2) pixel coordinates (NaN for points with Z <= 0)."""
        z = pts_cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack(
                [self.fx * pts_cam[:, 0] / z + self.cx, self.fy * pts_cam[:, 1] / z + self.cy], axis=1
            )
        uv[z <= 0] = np.nan
        return uv

    def pixel_rays(self) -> np.ndarray:
        """(H*W, 3) camera-frame ray directions through pixel centres, scaled to Z = 1.

        With Z = 1 the ray caster's hit parameter is the depth Z itself (it measures distance in
        units of the direction's length), so the depth buffer needs no conversion.
        """
        u, v = np.meshgrid(np.arange(self.width), np.arange(self.height))
        return np.stack(
            [(u - self.cx) / self.fx, (v - self.cy) / self.fy, np.ones(u.shape)], axis=-1
        ).reshape(-1, 3)


def hdl64_elevations() -> np.ndarray:
    """Beam elevation angles (deg), top to bottom: HDL-64E's two blocks, +2.0 .. -24.8 deg."""
    upper = np.linspace(2.0, -8.33, 32)  # ~1/3 deg spacing
    lower = np.linspace(-8.83, -24.8, 32)  # ~1/2 deg spacing
    return np.concatenate([upper, lower])


@dataclass(frozen=True)
class LidarSpec:
    beams: int = 64
    azimuth_steps: int = 2000  # 0.18 deg; the HDL-64E at 10 Hz has ~2083
    min_range: float = 0.9
    max_range: float = 120.0
    range_noise: float = 0.02  # 1-sigma, metres, along the beam (HDL-64E spec: < 2 cm)
    frame_id: str = "lidar"

    def elevations(self) -> np.ndarray:
        if self.beams == 64:
            return hdl64_elevations()
        return np.linspace(2.0, -24.8, self.beams)

    def directions(self) -> np.ndarray:
        """(beams * azimuth_steps, 3) unit directions in the LiDAR frame, ordered ring-major.

        Azimuth starts behind the car (-pi) and turns counter-clockwise; the whole sweep is taken at
        the frame's timestamp (no rolling-shutter motion skew).
        """
        el = np.radians(self.elevations())[:, None]
        az = np.linspace(-np.pi, np.pi, self.azimuth_steps, endpoint=False)[None, :]
        return np.stack(
            [
                np.cos(el) * np.cos(az),
                np.cos(el) * np.sin(az),
                np.broadcast_to(np.sin(el), (self.beams, self.azimuth_steps)),
            ],
            axis=-1,
        ).reshape(-1, 3)


# camera optical axes expressed in base_link: x_c = -y_b (right), y_c = -z_b (down), z_c = x_b
_R_BASE_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class Rig:
    camera: CameraSpec = field(default_factory=CameraSpec)
    lidar: LidarSpec = field(default_factory=LidarSpec)
    lidar_xyz: tuple[float, float, float] = (0.0, 0.0, 1.73)
    camera_xyz: tuple[float, float, float] = (0.27, 0.0, 1.65)
    camera_pitch_deg: float = 0.0  # positive looks down

    @cached_property
    def T_base_lidar(self) -> np.ndarray:
        return make_transform(np.eye(3), np.asarray(self.lidar_xyz))

    @cached_property
    def T_base_camera(self) -> np.ndarray:
        # pitching down = rotating about the optical x axis (right) by -pitch
        r = _R_BASE_OPTICAL @ rot_x(-np.radians(self.camera_pitch_deg))
        return make_transform(r, np.asarray(self.camera_xyz))

    @cached_property
    def T_camera_lidar(self) -> np.ndarray:
        return np.linalg.inv(self.T_base_camera) @ self.T_base_lidar
