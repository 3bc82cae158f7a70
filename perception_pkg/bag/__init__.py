"""rosbag2 reading and writing through rosbags (no ROS install needed): the one way the package does it.

``typestore``: the Jazzy typestore plus our messages; ``reader``: :func:`open_bag` / :class:`BagReader`
(``salvage``: what it reads a damaged bag with);
``writer``: :class:`BagWriter` (mcap, rosbag2 version 8).
"""

from perception_pkg.bag.reader import BagDamage, BagMessage, BagReader, BagUnreadable, open_bag
from perception_pkg.bag.typestore import get_typestore
from perception_pkg.bag.writer import BagWriter

__all__ = ["BagDamage", "BagMessage", "BagReader", "BagUnreadable", "BagWriter", "get_typestore", "open_bag"]
