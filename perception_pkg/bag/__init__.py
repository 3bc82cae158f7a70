"""rosbag2 reading and writing through rosbags (no ROS install needed)."""

from perception_pkg.bag.typestore import get_typestore

__all__ = ["get_typestore"]
