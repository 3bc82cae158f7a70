"""Detection results -> vision_msgs Detection2DArray / Detection3DArray (and back).

No rclpy import: the message classes come from a :class:`MessageFactory` (``.rclpy()`` for a live
node, ``.rosbags()`` for bag replay), so the node and the replay pipeline share these builders.

Conventions (DESIGN.md §4):

- Detection2D: ``bbox.center.position`` and ``size_x/size_y`` in source-image pixels (theta 0), in ROS's
  pixel convention (first pixel centred on 0, as CameraInfo's K): the stack's boxes (pixel j spans
  [j, j + 1)) shift by ``preprocess.affine.PIXEL_SHIFT`` on writing and back on reading; one
  result per detection, ``hypothesis.class_id`` the class *name*, ``score`` the detector score, and
  ``pose.pose.position`` the box centre in pixels (z 0), as the simulator's ground truth writes it.
- ``id`` is the detection's row in this frame ("0", "1", ...), identical in the 2D and 3D arrays, so a
  3D box can be matched to its 2D box. It is not a track id (there is no tracker).
- Detection3D: in the camera optical frame of the input (header = input header). The box is the same
  one the simulator's ground truth describes (``perception_pkg.sim.bag``), so predictions and labels in
  one bag compare directly:

  * ``bbox.center.position`` = the box's geometric centre (KITTI's location is the bottom-face centre,
    so the centre is ``(x, y - h/2, z)``);
  * ``bbox.center.orientation`` turns the object frame (x forward along the length, y left along the
    width, z up along the height: REP 103 for objects) into the camera frame; for a yaw ``rotation_y``
    about camera +y that is ``R_y(rotation_y) @ R_x(+90 deg)``;
  * ``bbox.size`` = (l, w, h) along the object's x, y, z.

  Only rows with a finite 3D box are published (classes without 3D heads or failed solves are left
  out); ``id`` tells which 2D row each one is.
- RViz markers of these boxes are built in ``perception_pkg/viz/markers.py``.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from perception_pkg.msgs._common import float_array, get_field, str_field
from perception_pkg.msgs.errors import MessageFormatError
from perception_pkg.msgs.factory import MessageFactory
from perception_pkg.msgs.fast import makers
from perception_pkg.preprocess.affine import PIXEL_SHIFT


class DetectionResult(Protocol):
    """What the builders read of a result (``perception_pkg.detection.DetectionResult`` is one; msgs/
    sits below the detection core and does not import it): ``detections`` with ``boxes`` (N, 4) xyxy
    stack pixels, ``scores``, ``class_ids``; ``boxes3d`` (N, 7) KITTI camera boxes or None; optional
    ``scores3d``; ``labels()`` the class names per row."""

    detections: Any
    boxes3d: Any

    def labels(self) -> list[str]: ...


_DET2D = "vision_msgs/msg/Detection2DArray"
_DET3D = "vision_msgs/msg/Detection3DArray"
_SQRT_HALF = math.sqrt(0.5)

# --- KITTI box <-> BoundingBox3D pose ---------------------------------------------------------------


def kitti_to_bbox3d(
    boxes: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(N, 7) KITTI ``[x, y, z, h, w, l, rotation_y]`` -> centres (N, 3), quaternions (N, 4) x, y, z, w,
    sizes (N, 3) (l, w, h); see the module docstring for the frames.

    The quaternion is q_y(ry) * q_x(90 deg) written out: sqrt(1/2) * (cos, sin, -sin, cos)(ry / 2).
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    centres = b[:, 0:3].copy()
    centres[:, 1] -= b[:, 3] / 2  # y points down: the centre is h/2 above the bottom face
    half = b[:, 6] / 2
    c, s = np.cos(half), np.sin(half)
    quats = _SQRT_HALF * np.stack([c, s, -s, c], axis=1)
    sizes = b[:, [5, 4, 3]]
    return centres, quats, sizes


def _quat_matrices(q: NDArray[np.float64]) -> NDArray[np.float64]:
    """(N, 4) x, y, z, w (any norm) -> (N, 3, 3) rotation matrices."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    x, y, z, w = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def bbox3d_to_kitti(
    centres: NDArray[np.float64], quats: NDArray[np.float64], sizes: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Inverse of :func:`kitti_to_bbox3d`: (N, 7) KITTI boxes. Boxes that are not level (object z not
    along camera -y) keep their heading's yaw; their tilt is dropped, as KITTI has no field for it."""
    rot = _quat_matrices(np.asarray(quats, dtype=np.float64).reshape(-1, 4))
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 3)
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1, 3)
    heading = rot[:, :, 0]
    ry = np.arctan2(-heading[:, 2], heading[:, 0])
    bottom = centres - rot[:, :, 2] * (sizes[:, 2:3] / 2)
    return np.concatenate([bottom, sizes[:, [2, 1, 0]], ry[:, None]], axis=1)


# --- builders --------------------------------------------------------------------------------------


def pose_msg(types: MessageFactory, xyz: Any, q: Any = (0.0, 0.0, 0.0, 1.0)) -> Any:
    pose, point, quat = makers(types, "Pose", "Point", "Quaternion")
    return pose(
        point(float(xyz[0]), float(xyz[1]), float(xyz[2])),
        quat(float(q[0]), float(q[1]), float(q[2]), float(q[3])),
    )


_2D = ("Point2D", "Pose2D", "BoundingBox2D", "ObjectHypothesis", "ObjectHypothesisWithPose",
       "PoseWithCovariance", "Pose", "Point", "Quaternion", "Detection2D", "Detection2DArray")  # fmt: skip
_3D = ("ObjectHypothesis", "ObjectHypothesisWithPose", "PoseWithCovariance", "Pose", "Point",
       "Quaternion", "Vector3", "BoundingBox3D", "Detection3D", "Detection3DArray")  # fmt: skip


def detection2d_array(result: DetectionResult, header: Any, types: MessageFactory) -> Any:
    """``vision_msgs/Detection2DArray`` of ``result`` (every row), stamped with ``header``.

    Every number goes through one ``tolist`` and every message is made positionally
    (:mod:`perception_pkg.msgs.fast`): no per-field numpy scalars, no throw-away defaults.
    """
    dets = result.detections
    boxes = np.asarray(dets.boxes, dtype=np.float64)
    rows = np.concatenate(
        [
            (boxes[:, :2] + boxes[:, 2:]) / 2 - PIXEL_SHIFT,
            boxes[:, 2:] - boxes[:, :2],
            np.asarray(dets.scores, dtype=np.float64)[:, None],
        ],
        axis=1,
    ).tolist()
    point2d, pose2d, bbox2d, hyp, hyp_pose, pose_cov, pose, point, quat, det2d, det2d_array = makers(
        types, *_2D
    )
    out = [
        det2d(
            header,
            [
                hyp_pose(
                    hyp(label, score),
                    pose_cov(pose(point(cx, cy, 0.0), quat(0.0, 0.0, 0.0, 1.0)), np.zeros(36)),
                )
            ],
            bbox2d(pose2d(point2d(cx, cy), 0.0), sx, sy),
            str(i),
        )
        for i, (label, (cx, cy, sx, sy, score)) in enumerate(zip(result.labels(), rows, strict=True))
    ]
    return det2d_array(header, out)


def detection3d_array(result: DetectionResult, header: Any, types: MessageFactory) -> Any:
    """``vision_msgs/Detection3DArray`` of the rows of ``result`` with a finite 3D box (none when
    ``result.boxes3d`` is None). ``header`` should be the camera's (optical frame) header."""
    hyp, hyp_pose, pose_cov, pose, point, quat, vector3, bbox3d, det3d, det3d_array = makers(types, *_3D)
    if result.boxes3d is None:
        return det3d_array(header, [])
    boxes3d = np.asarray(result.boxes3d, dtype=np.float64).reshape(-1, 7)
    rows = np.flatnonzero(np.all(np.isfinite(boxes3d), axis=1))
    centres, quats, sizes = kitti_to_bbox3d(boxes3d[rows])
    labels = result.labels()
    # the 3D confidence where the detector gives one (it ranks 3D boxes better than the 2D score)
    scores = getattr(result, "scores3d", None)
    scores = result.detections.scores if scores is None else scores
    table = np.concatenate(
        [centres, quats, sizes, np.asarray(scores, dtype=np.float64)[rows, None]], axis=1
    ).tolist()
    out = [
        det3d(
            header,
            [
                hyp_pose(
                    hyp(labels[r], score),
                    pose_cov(pose(point(x, y, z), quat(qx, qy, qz, qw)), np.zeros(36)),
                )
            ],
            bbox3d(pose(point(x, y, z), quat(qx, qy, qz, qw)), vector3(l_, w_, h_)),
            str(r),
        )
        for r, (x, y, z, qx, qy, qz, qw, l_, w_, h_, score) in zip(rows.tolist(), table, strict=True)
    ]
    return det3d_array(header, out)


# --- readers (evaluation, tests, replay reports) ----------------------------------------------------


def _best_result(det: Any, msg_type: str, i: int) -> tuple[str, float]:
    results = get_field(det, "results", msg_type, f"detections[{i}].results")
    if len(results) == 0:
        return "", float("nan")
    hyp = get_field(results[0], "hypothesis", msg_type, f"detections[{i}].results[0].hypothesis")
    label = str_field(hyp, "class_id", msg_type, f"detections[{i}].results[0].hypothesis.class_id")
    return label, float(get_field(hyp, "score", msg_type, f"detections[{i}].results[0].hypothesis.score"))


def detection2d_array_to_xyxy(msg: Any) -> tuple[NDArray[np.float64], NDArray[np.float64], list[str]]:
    """Boxes (N, 4) xyxy pixels, scores (N,) and class names from a Detection2DArray (first result of
    each detection; an empty ``results`` gives label "" and score NaN)."""
    dets = get_field(msg, "detections", _DET2D)
    n = len(dets)
    vals = np.empty((n, 4))
    scores = np.empty(n)
    labels = []
    for i, d in enumerate(dets):
        bbox = get_field(d, "bbox", _DET2D, f"detections[{i}].bbox")
        pos = bbox.center.position
        vals[i] = (pos.x, pos.y, bbox.size_x, bbox.size_y)
        labels.append("")
        labels[i], scores[i] = _best_result(d, _DET2D, i)
    centre = vals[:, :2] + PIXEL_SHIFT
    boxes = np.concatenate([centre - vals[:, 2:] / 2, centre + vals[:, 2:] / 2], axis=1)
    return boxes, scores, labels


_F64 = NDArray[np.float64]


def detection3d_fields(msg: Any) -> tuple[_F64, _F64, _F64, _F64, list[str], list[str]]:
    """The fields of every detection of a Detection3DArray as arrays, unchecked: centres (N, 3),
    quaternions (N, 4) x, y, z, w, sizes (N, 3), best scores (N,), their class names and the ids. The
    readers built on it check what they need."""
    dets = get_field(msg, "detections", _DET3D)
    n = len(dets)
    centres, quats, sizes = np.empty((n, 3)), np.empty((n, 4)), np.empty((n, 3))
    scores = np.empty(n)
    labels, ids = [], []
    for i, d in enumerate(dets):
        bbox = get_field(d, "bbox", _DET3D, f"detections[{i}].bbox")
        p, q, s = bbox.center.position, bbox.center.orientation, bbox.size
        centres[i], quats[i], sizes[i] = (p.x, p.y, p.z), (q.x, q.y, q.z, q.w), (s.x, s.y, s.z)
        label, scores[i] = _best_result(d, _DET3D, i)
        labels.append(label)
        ids.append(str_field(d, "id", _DET3D, f"detections[{i}].id"))
    return centres, quats, sizes, scores, labels, ids


def detection3d_array_to_kitti(
    msg: Any,
) -> tuple[NDArray[np.float64], NDArray[np.float64], list[str], list[str]]:
    """KITTI boxes (N, 7), scores (N,), class names and ids from a Detection3DArray in a camera
    optical frame (the inverse of :func:`detection3d_array`)."""
    centres, quats, sizes, scores, labels, ids = detection3d_fields(msg)
    n = len(centres)
    if n and not np.all(np.linalg.norm(quats, axis=1) > 0):
        raise MessageFormatError(_DET3D, "bbox.center.orientation", "a non-zero quaternion", "zero")
    float_array(centres.reshape(-1), _DET3D, "bbox.center.position")  # finite check, names the field
    return bbox3d_to_kitti(centres, quats, sizes) if n else np.zeros((0, 7)), scores, labels, ids
