"""People (pose results) <-> perception_msgs/PersonArray, skeleton MarkerArray, person boxes from
vision_msgs/Detection2DArray. Works on rclpy and rosbags message objects alike; never imports rclpy.

Pixel convention. The stack (model cards, :class:`perception_pkg.pose.PoseResult`) uses continuous
image coordinates where pixel column ``j`` spans ``[j, j + 1)``; ROS messages (Keypoint2D, vision_msgs
boxes, CameraInfo) put the centre of the first pixel at 0. Writers here subtract :data:`PIXEL_SHIFT`
and readers add it back, so ``arrays -> message -> arrays`` is the identity (at float32 precision for
float32 fields) and a keypoint on pixel (c, r) reads (c, r) in the message.

Skeleton markers are drawn in the image plane: a point at image pixel (u, v) becomes
``(u * pixel_size, v * pixel_size, 0)`` metres in the image's ``frame_id`` (x right, y down in an
optical frame), so RViz shows a flat, to-scale picture of the skeletons next to the camera (default
1 mm per pixel: a 640 px wide image spans 0.64 m).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.msgs._common import get_field, str_field
from perception_pkg.msgs.errors import MessageFormatError
from perception_pkg.msgs.factory import MessageFactory
from perception_pkg.msgs.fast import makers
from perception_pkg.msgs.header import stamp_to_ns
from perception_pkg.preprocess.affine import PIXEL_SHIFT

NUM_COCO_KEYPOINTS = 17
PERSON_ARRAY = "perception_msgs/msg/PersonArray"
DETECTION2D_ARRAY = "vision_msgs/msg/Detection2DArray"


# --- readers -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeopleArrays:
    """A PersonArray as arrays in stack coordinates: ``boxes`` (N, 4) xyxy, ``scores`` (N,),
    ``keypoints`` (N, K, 2), ``keypoint_scores`` (N, K), ``sigmas`` (N, K) (NaN where absent)."""

    stamp_ns: int
    frame_id: str
    boxes: NDArray[np.float64]
    scores: NDArray[np.float64]
    keypoints: NDArray[np.float64]
    keypoint_scores: NDArray[np.float64]
    sigmas: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


def _bbox_to_xyxy(bbox: Any, msg_type: str, where: str) -> tuple[float, float, float, float]:
    centre = get_field(get_field(bbox, "center", msg_type, f"{where}.center"), "position", msg_type)
    try:
        cx, cy = float(centre.x), float(centre.y)
        w, h = float(bbox.size_x), float(bbox.size_y)
    except (AttributeError, TypeError, ValueError) as exc:
        raise MessageFormatError(
            msg_type, where, "center.position.x/y, size_x, size_y numbers", exc
        ) from None
    if not all(np.isfinite(v) for v in (cx, cy, w, h)):
        raise MessageFormatError(msg_type, where, "finite centre and size", (cx, cy, w, h))
    if w < 0 or h < 0:
        raise MessageFormatError(msg_type, f"{where}.size_x/size_y", "sizes >= 0", (w, h))
    cx, cy = cx + PIXEL_SHIFT, cy + PIXEL_SHIFT
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def person_array_to_arrays(msg: Any) -> PeopleArrays:
    """Arrays of a ``perception_msgs/PersonArray`` (rclpy or rosbags); MessageFormatError when a person
    has a number of keypoints other than 17 or non-numeric fields."""
    t = PERSON_ARRAY
    header = get_field(msg, "header", t)
    people = list(get_field(msg, "people", t))
    n, k = len(people), NUM_COCO_KEYPOINTS
    boxes = np.zeros((n, 4))
    scores = np.zeros(n)
    kp = np.zeros((n, k, 4))  # x, y, score, sigma
    for i, p in enumerate(people):
        boxes[i] = _bbox_to_xyxy(get_field(p, "bbox", t, f"people[{i}].bbox"), t, f"people[{i}].bbox")
        kps = get_field(p, "keypoints", t, f"people[{i}].keypoints")
        if len(kps) != k:
            raise MessageFormatError(t, f"people[{i}].keypoints", f"{k} keypoints (COCO-17)", len(kps))
        try:
            scores[i] = float(p.score)
            kp[i] = [(q.x, q.y, q.score, q.sigma) for q in kps]
        except (AttributeError, TypeError, ValueError) as exc:
            raise MessageFormatError(t, f"people[{i}]", "numeric score and keypoint fields", exc) from None
    return PeopleArrays(
        stamp_to_ns(header),
        str_field(header, "frame_id", "std_msgs/msg/Header"),
        boxes,
        scores,
        kp[..., :2] + PIXEL_SHIFT,
        kp[..., 2],
        kp[..., 3],
    )


def detections_to_person_boxes(
    msg: Any, class_id: str = "person"
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(N, 4) xyxy boxes (stack coordinates) and (N,) scores of one class from a Detection2DArray.

    A detection counts when one of its hypotheses has ``class_id`` (its best such score is used); an
    empty ``class_id`` takes every detection with its best hypothesis. Non-finite or negative boxes are
    malformed input (MessageFormatError); zero-size boxes are returned for the caller to filter.
    """
    t = DETECTION2D_ARRAY
    boxes: list[tuple[float, float, float, float]] = []
    scores: list[float] = []
    for i, det in enumerate(get_field(msg, "detections", t)):
        best = -np.inf
        for j, res in enumerate(get_field(det, "results", t, f"detections[{i}].results")):
            hyp = get_field(res, "hypothesis", t, f"detections[{i}].results[{j}].hypothesis")
            if class_id and hyp.class_id != class_id:
                continue
            s = float(hyp.score)
            if not np.isfinite(s):
                raise MessageFormatError(t, f"detections[{i}].results[{j}].hypothesis.score", "finite", s)
            best = max(best, s)
        if best == -np.inf:
            continue
        boxes.append(
            _bbox_to_xyxy(get_field(det, "bbox", t, f"detections[{i}].bbox"), t, f"detections[{i}].bbox")
        )
        scores.append(best)
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(scores, dtype=np.float64)


# --- writers -------------------------------------------------------------------------------------------


def people_to_person_array(
    header: Any,
    types: MessageFactory,
    boxes: NDArray,
    person_scores: NDArray,
    keypoints: NDArray,
    keypoint_scores: NDArray,
    sigmas: NDArray | None = None,
) -> Any:
    """A ``perception_msgs/PersonArray`` from arrays in stack coordinates (``sigmas`` None -> NaN).

    Numbers go through one ``tolist`` per table and messages are made positionally
    (:mod:`perception_pkg.msgs.fast`): 17 Keypoint2D per person is most of the cost.
    """
    n = len(boxes)
    if keypoints.shape != (n, NUM_COCO_KEYPOINTS, 2) or keypoint_scores.shape != (n, NUM_COCO_KEYPOINTS):
        raise MessageFormatError(
            PERSON_ARRAY, "people[].keypoints", f"({n}, 17, 2) keypoints and ({n}, 17) scores",
            f"{keypoints.shape} and {keypoint_scores.shape}",
        )  # fmt: skip
    sig = np.full((n, NUM_COCO_KEYPOINTS), np.nan) if sigmas is None else sigmas
    # one (n, 17, 4) table turned into Python floats at once: per-element numpy scalars are slow
    table = np.concatenate([keypoints - PIXEL_SHIFT, keypoint_scores[..., None], sig[..., None]], -1).tolist()
    point2d, pose2d, bbox2d, keypoint, person, person_array = makers(
        types, "Point2D", "Pose2D", "BoundingBox2D", "Keypoint2D", "Person", "PersonArray"
    )
    people = []
    for (x0, y0, x1, y1), score, kps in zip(
        np.asarray(boxes, dtype=np.float64).tolist(),
        np.asarray(person_scores, dtype=np.float64).tolist(),
        table,
        strict=True,
    ):
        centre = point2d((x0 + x1) / 2 - PIXEL_SHIFT, (y0 + y1) / 2 - PIXEL_SHIFT)
        bbox = bbox2d(pose2d(centre, 0.0), x1 - x0, y1 - y0)
        people.append(person(bbox, score, [keypoint(x, y, s, g) for x, y, s, g in kps]))
    return person_array(header, people)


def pose_to_person_array(result: Any, header: Any, types: MessageFactory) -> Any:
    """A ``perception_msgs/PersonArray`` from a :class:`perception_pkg.pose.PoseResult`."""
    return people_to_person_array(
        header, types, result.boxes, result.person_scores, result.keypoints, result.scores, result.sigmas
    )
