"""vision_msgs/Detection3DArray in any frame -> box arrays (centres, rotations, sizes), and
tf2_msgs/TFMessage -> 4x4 transforms. For the completion node, which takes boxes in the LiDAR frame
(ground truth) or in a camera optical frame (the detection node) and brings them into the scan's frame.

Box convention (as ``msgs/detections.py`` and the simulator write it): ``bbox.center.position`` the
geometric centre, ``bbox.center.orientation`` the object axes (x length, y width, z height) in the
header frame, ``bbox.size`` = (l, w, h). A transform ``parent -> child`` in a TFMessage is the pose of
the child frame in the parent: it maps child coordinates to parent coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.msgs._common import get_field, str_field
from perception_pkg.msgs.detections import _quat_matrices, detection3d_fields
from perception_pkg.msgs.errors import MessageFormatError

_DET3D = "vision_msgs/msg/Detection3DArray"
_TF = "tf2_msgs/msg/TFMessage"


@dataclass
class BoxArrays:
    frame_id: str
    centres: NDArray[np.float64]  # (N, 3)
    rotations: NDArray[np.float64]  # (N, 3, 3)
    sizes: NDArray[np.float64]  # (N, 3) l, w, h
    labels: list[str]
    scores: NDArray[np.float64]
    ids: list[str]


def detection3d_array_to_boxes(msg: Any) -> BoxArrays:
    """Every detection of a Detection3DArray as arrays; a non-finite pose or size, a zero quaternion or a
    negative size is a MessageFormatError naming the field."""
    header = get_field(msg, "header", _DET3D)
    frame = str_field(header, "frame_id", _DET3D, "header.frame_id")
    centres, quats, sizes, scores, labels, ids = detection3d_fields(msg)
    n = len(centres)
    for name, arr in (
        ("bbox.center.position", centres),
        ("bbox.size", sizes),
        ("bbox.center.orientation", quats),
    ):
        if not np.all(np.isfinite(arr)):
            raise MessageFormatError(_DET3D, name, "finite values", "NaN or inf")
    if n and not np.all(np.linalg.norm(quats, axis=1) > 0):
        raise MessageFormatError(_DET3D, "bbox.center.orientation", "a non-zero quaternion", "zero")
    if np.any(sizes < 0):
        raise MessageFormatError(_DET3D, "bbox.size", "sizes >= 0", sizes.min())
    rot = _quat_matrices(quats) if n else np.zeros((0, 3, 3))
    return BoxArrays(frame, centres, rot, sizes, labels, scores, ids)


def quat_xyzw_to_matrix(q: Any) -> NDArray[np.float64]:
    return _quat_matrices(np.asarray(q, dtype=np.float64).reshape(1, 4))[0]


def pose_to_matrix(xyz: Any, q_xyzw: Any) -> NDArray[np.float64]:
    t = np.eye(4)
    t[:3, :3] = quat_xyzw_to_matrix(q_xyzw)
    t[:3, 3] = np.asarray(xyz, dtype=np.float64)
    return t


def tf_message_to_transforms(msg: Any) -> list[tuple[str, str, NDArray[np.float64]]]:
    """(parent, child, T_parent_child) for every transform of a TFMessage."""
    out = []
    for i, ts in enumerate(get_field(msg, "transforms", _TF)):
        header = get_field(ts, "header", _TF, f"transforms[{i}].header")
        parent = str_field(header, "frame_id", _TF, f"transforms[{i}].header.frame_id")
        child = str_field(ts, "child_frame_id", _TF, f"transforms[{i}].child_frame_id")
        tr = get_field(ts, "transform", _TF, f"transforms[{i}].transform")
        v, q = tr.translation, tr.rotation
        xyz, quat = (v.x, v.y, v.z), (q.x, q.y, q.z, q.w)
        if not (np.all(np.isfinite(xyz)) and np.all(np.isfinite(quat)) and np.linalg.norm(quat) > 0):
            raise MessageFormatError(_TF, f"transforms[{i}].transform", "a finite pose", (xyz, quat))
        out.append((parent, child, pose_to_matrix(xyz, quat)))
    return out
