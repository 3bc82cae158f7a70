"""RViz markers: 3D detection wireframes with labels, and image-plane skeletons.

Built with a :class:`perception_pkg.msgs.MessageFactory`, so the node and replay make the same markers.

- Detections: per 3D box one LINE_LIST (12 edges + a cross on the front face) in namespace
  ``detection_boxes`` and one TEXT_VIEW_FACING label in ``detection_labels``, id = row, per-class
  colour (the annotated image uses the same colours), a ``lifetime`` so boxes of a stalled stream
  vanish. No DELETEALL: the markers topic may be shared with other nodes (skeletons), and DELETEALL
  would wipe theirs; instead the caller passes how many it sent last time and the surplus ids get an
  explicit DELETE.
- Skeletons are drawn in the image plane: a point at image pixel (u, v) becomes
  ``(u * pixel_size, v * pixel_size, 0)`` metres in the image's ``frame_id`` (x right, y down in an
  optical frame), so RViz shows a flat, to-scale picture of the skeletons next to the camera (default
  1 mm per pixel: a 640 px wide image spans 0.64 m). Keypoints are in the stack's pixel convention
  and shift by ``PIXEL_SHIFT`` to ROS's, as every message writer does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.geometry3d.box3d import boxes_to_keypoints
from perception_pkg.msgs._common import pack_bytes
from perception_pkg.msgs.detections import pose_msg
from perception_pkg.msgs.factory import MessageFactory
from perception_pkg.msgs.fast import makers
from perception_pkg.pose.coco17 import NUM_KEYPOINTS, SKELETON
from perception_pkg.preprocess.affine import PIXEL_SHIFT
from perception_pkg.viz.detections import WIREFRAME_EDGES
from perception_pkg.viz.palette import class_colour

if TYPE_CHECKING:
    from perception_pkg.detection.detector import DetectionResult

MARKER_NS_BOXES = "detection_boxes"
MARKER_NS_LABELS = "detection_labels"
_LINE_LIST, _POINTS, _ADD, _DELETE = 5, 8, 0, 2  # visualization_msgs/Marker constants
_SKELETON = np.asarray(SKELETON, dtype=np.intp)  # (19, 2) keypoint index pairs
MARKER_ARRAY = "visualization_msgs/msg/MarkerArray"


def _marker(
    types: MessageFactory,
    header: Any,
    ns: str,
    mid: int,
    action: int,
    *,
    kind: int = 0,
    points: list | None = None,
    scale: float = 0.0,
    rgba: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
    lifetime_s: float = 0.0,
    text: str = "",
    pose: Any = None,
) -> Any:
    """A Marker with every field given (rosbags classes have no defaults), made positionally
    (:mod:`perception_pkg.msgs.fast`); ``pose`` None is the identity pose."""
    marker, pose_, point, quat, vector3, colour, duration, image, header_, time_, mesh = makers(
        types, *_MARKER
    )
    sec, nanosec = divmod(round(lifetime_s * 1e9), 1_000_000_000)
    empty = np.zeros(0, dtype=np.uint8)
    s = float(scale)
    return marker(
        header,
        ns,
        int(mid),
        int(kind),
        int(action),
        pose if pose is not None else pose_(point(0.0, 0.0, 0.0), quat(0.0, 0.0, 0.0, 1.0)),
        vector3(s, s, s),
        colour(*rgba),
        duration(sec, nanosec),
        False,
        points or [],
        [],
        "",
        image(header_(time_(0, 0), ""), "", pack_bytes(types.CompressedImage, empty, owned=True)),
        [],
        text,
        "",
        mesh("", pack_bytes(types.MeshFile, empty, owned=True)),
        False,
    )


_MARKER = ("Marker", "Pose", "Point", "Quaternion", "Vector3", "ColorRGBA", "Duration", "CompressedImage",
           "Header", "Time", "MeshFile")  # fmt: skip


def detection_markers(
    result: DetectionResult,
    header: Any,
    types: MessageFactory,
    *,
    lifetime_s: float = 0.5,
    line_width: float = 0.05,
    text_height: float = 0.4,
    previous_count: int = 0,
) -> Any:
    """``visualization_msgs/MarkerArray``: a wireframe and a label per finite 3D box (id = its row),
    then DELETE for ids ``len(result) .. previous_count - 1`` left over from the previous call."""
    marker_cls = types.Marker
    add, delete = int(marker_cls.ADD), int(marker_cls.DELETE)
    markers = []
    n = len(result)
    if result.boxes3d is not None and n:
        boxes3d = np.asarray(result.boxes3d, dtype=np.float64).reshape(-1, 7)
        rows = np.flatnonzero(np.all(np.isfinite(boxes3d), axis=1))
        corners = boxes_to_keypoints(boxes3d[rows])[:, :8]  # (M, 8, 3)
        segments = corners[:, WIREFRAME_EDGES.reshape(-1)].tolist()  # (M, 2E, 3): LINE_LIST pairs
        tops = boxes3d[rows, :3].copy()
        tops[:, 1] -= boxes3d[rows, 3] + text_height  # just above the top face (y down)
        labels = result.labels()
        scores = result.detections.scores
        cids = result.detections.class_ids
        (point,) = makers(types, "Point")
        for j, r in enumerate(rows.tolist()):
            rgba = (*class_colour(int(cids[r])), 1.0)
            pts = [point(x, y, z) for x, y, z in segments[j]]
            markers.append(
                _marker(types, header, MARKER_NS_BOXES, r, add, kind=int(marker_cls.LINE_LIST),
                        points=pts, scale=line_width, rgba=rgba, lifetime_s=lifetime_s)
            )  # fmt: skip
            markers.append(
                _marker(types, header, MARKER_NS_LABELS, r, add, kind=int(marker_cls.TEXT_VIEW_FACING),
                        scale=text_height, rgba=rgba, lifetime_s=lifetime_s,
                        text=f"{labels[r]} {scores[r]:.2f}", pose=pose_msg(types, tops[j]))
            )  # fmt: skip
        # rows without a 3D box this frame may have had one before: delete those ids too
        stale = np.setdiff1d(np.arange(n), rows).tolist()
    else:
        stale = list(range(n))
    stale += list(range(n, int(previous_count)))
    for r in stale:
        for ns in (MARKER_NS_BOXES, MARKER_NS_LABELS):
            markers.append(_marker(types, header, ns, r, delete))
    (marker_array,) = makers(types, MARKER_ARRAY)
    return marker_array(markers)


def skeleton_markers(
    header: Any,
    types: MessageFactory,
    keypoints: NDArray,
    scores: NDArray,
    *,
    threshold: float = 0.0,
    pixel_size: float = 1e-3,
    ns: str = "pose",
) -> Any:
    """A MarkerArray: limbs as one LINE_LIST (id 0) and keypoints as one POINTS marker (id 1).

    A limb is drawn when both its keypoints score >= ``threshold`` and are finite. Fixed ids, so each
    message replaces the previous one in RViz; with nobody to draw both markers are DELETE actions.
    Coordinates: see the module docstring (image plane, ``pixel_size`` metres per pixel).
    """
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2) - PIXEL_SHIFT
    ok = (np.asarray(scores).reshape(kp.shape[:2]) >= threshold) & np.isfinite(kp).all(-1)
    limb_ok = ok[:, _SKELETON[:, 0]] & ok[:, _SKELETON[:, 1]]  # (N, 19)
    ends = kp[:, _SKELETON][limb_ok].reshape(-1, 2) * pixel_size  # (2 * limbs, 2), pairs in order
    joints = kp[ok] * pixel_size
    (point,) = makers(types, "Point")

    def marker(
        mid: int, kind: int, xy: NDArray, width: float, rgba: tuple[float, float, float, float]
    ) -> Any:
        pts = [point(x, y, 0.0) for x, y in xy.tolist()]
        return _marker(
            types, header, ns, mid, _ADD if pts else _DELETE, kind=kind, points=pts, scale=width, rgba=rgba
        )

    w = 3.0 * pixel_size
    (marker_array,) = makers(types, MARKER_ARRAY)
    return marker_array(
        [
            marker(0, _LINE_LIST, ends, w, (0.1, 0.9, 0.2, 1.0)),
            marker(1, _POINTS, joints, 2 * w, (1.0, 0.3, 0.1, 1.0)),
        ]
    )
