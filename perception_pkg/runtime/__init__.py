"""Pieces every node needs that do not depend on ROS: latest-frame hand-off and running statistics."""

from perception_pkg.runtime.latest import LatestSlot
from perception_pkg.runtime.stats import NodeStats

__all__ = ["LatestSlot", "NodeStats"]
