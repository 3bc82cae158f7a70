"""LiDAR object completion (SoftPoolNet, softpoolnet.txt): the numpy core, no ROS, no torch.

- ``frame``: boxes and the PCN object frame (centre, rotate by -yaw, divide by length) with its exact
  inverse;
- ``extract``: the points of each box in a scan; ``cluster``: boxes from the scan alone (ground plane,
  DBSCAN, minimum-area rectangle);
- ``sampling``: resampling to the network's input size; ``completer``: a card's engine completing all
  objects of a scan in one batched call; ``scan``: one scan end to end;
- ``transforms``: a static transform tree (what /tf_static says).
"""

from perception_pkg.completion.completer import Completer, resolve_card
from perception_pkg.completion.extract import points_in_boxes
from perception_pkg.completion.frame import Boxes, ObjectFrames, yaw_rotations
from perception_pkg.completion.sampling import resample
from perception_pkg.completion.scan import ScanCompletion, ScanParams, complete_scan
from perception_pkg.completion.transforms import StaticTransforms

__all__ = [
    "Boxes",
    "Completer",
    "ObjectFrames",
    "ScanCompletion",
    "ScanParams",
    "StaticTransforms",
    "complete_scan",
    "points_in_boxes",
    "resample",
    "resolve_card",
    "yaw_rotations",
]
