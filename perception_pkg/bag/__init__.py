"""rosbag2 reading and writing through rosbags (no ROS install needed): the one way the package does it.

``typestore``: the Jazzy typestore plus our messages; ``reader``: :func:`open_bag` / :class:`BagReader`;
``writer``: :class:`BagWriter` (mcap, rosbag2 version 8).
"""

from perception_pkg.bag.reader import BagMessage, BagReader, open_bag
from perception_pkg.bag.typestore import get_typestore
from perception_pkg.bag.writer import BagWriter

__all__ = ["BagMessage", "BagReader", "BagWriter", "get_typestore", "open_bag"]
