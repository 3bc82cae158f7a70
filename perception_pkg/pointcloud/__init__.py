"""Point-cloud operations on plain numpy arrays (no ROS)."""

from perception_pkg.pointcloud.filter import CloudFilter, voxel_downsample

__all__ = ["CloudFilter", "voxel_downsample"]
