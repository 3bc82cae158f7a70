"""RViz markers of completed objects: one POINTS marker per object and its box as a LINE_LIST.

Namespace ``completion_points`` (id = the object's row in this scan, colour by object id so an
object keeps its colour over frames) and ``completion_boxes``; at most ``max_points`` points per
object are drawn (every k-th of the completion: a Point message per point is the costly part of a
MarkerArray). Ids left over from the previous call are DELETEd (no DELETEALL: the markers topic may be
shared). Built with a :class:`~perception_pkg.msgs.MessageFactory`, so the node and replay make the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.msgs.factory import MessageFactory
from perception_pkg.viz.markers import _marker
from perception_pkg.viz.palette import class_colour

NS_POINTS = "completion_points"
NS_BOXES = "completion_boxes"
# edges of the corner order of completion.frame.Boxes.corners (index = 4 ix + 2 iy + iz): corners one
# bit apart, plus a cross on the front face (+x, corners 4-7) so the heading shows
EDGES = np.array(
    [[a, a ^ bit] for a in range(8) for bit in (1, 2, 4) if a < a ^ bit] + [[4, 7], [5, 6]], dtype=np.intp
)


def completion_markers(
    header: Any,
    types: MessageFactory,
    points: NDArray,
    corners: NDArray,
    object_ids: NDArray,
    *,
    previous_count: int = 0,
    lifetime_s: float = 0.5,
    point_size: float = 0.05,
    max_points: int = 512,
) -> Any:
    """``points`` (K, P, 3) completions and ``corners`` (K, 8, 3) box corners in ``header``'s frame."""
    marker_cls = types.Marker
    add, delete = int(marker_cls.ADD), int(marker_cls.DELETE)
    point_cls = types.Point
    markers = []
    k = len(points)
    for i in range(k):
        step = max(1, -(-points.shape[1] // max_points))
        rgba = (*class_colour(int(object_ids[i])), 1.0)
        pts = [point_cls(x=x, y=y, z=z) for x, y, z in points[i, ::step].astype(np.float64).tolist()]
        markers.append(
            _marker(types, header, NS_POINTS, i, add, kind=int(marker_cls.POINTS), points=pts,
                    scale=point_size, rgba=rgba, lifetime_s=lifetime_s)
        )  # fmt: skip
        seg = corners[i][EDGES.reshape(-1)].astype(np.float64).tolist()
        markers.append(
            _marker(types, header, NS_BOXES, i, add, kind=int(marker_cls.LINE_LIST),
                    points=[point_cls(x=x, y=y, z=z) for x, y, z in seg], scale=point_size / 2, rgba=rgba,
                    lifetime_s=lifetime_s)
        )  # fmt: skip
    for i in range(k, int(previous_count)):
        for ns in (NS_POINTS, NS_BOXES):
            markers.append(_marker(types, header, ns, i, delete))
    return types.MarkerArray(markers=markers)
