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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.ros.convert._common import PIXEL_SHIFT, _is_rclpy_class, get_field, str_field
from perception_pkg.ros.convert.errors import MessageFormatError
from perception_pkg.ros.convert.types import MsgTypes, stamp_to_ns
from perception_pkg.sim.people import COCO_SKELETON

NUM_COCO_KEYPOINTS = 17
PERSON_ARRAY = "perception_msgs/msg/PersonArray"
DETECTION2D_ARRAY = "vision_msgs/msg/Detection2DArray"
MARKER_ARRAY = "visualization_msgs/msg/MarkerArray"
_LINE_LIST, _POINTS, _ADD, _DELETE = 5, 8, 0, 2  # visualization_msgs/Marker constants
_SKELETON = np.asarray(COCO_SKELETON, dtype=np.intp)  # (19, 2) keypoint index pairs


class MessageFactory:
    """Builds messages by ROS type name (``perception_msgs/msg/Person``) for rclpy or rosbags.

    rosbags dataclasses have no field defaults, so fields not given are filled with the ROS defaults
    (zeros, empty strings and sequences, nested defaults) from the typestore's definitions.
    """

    def __init__(
        self, resolve: Callable[[str], type], defaults: Callable[[str], dict[str, Any]] | None
    ) -> None:
        self._resolve = resolve
        self._defaults = defaults
        self._classes: dict[str, type] = {}

    @classmethod
    def rclpy(cls) -> MessageFactory:
        import importlib

        def resolve(name: str) -> type:
            pkg, _, msg = name.split("/")
            return getattr(importlib.import_module(f"{pkg}.msg"), msg)

        return cls(resolve, None)

    @classmethod
    def rosbags(cls, typestore: Any = None) -> MessageFactory:
        if typestore is None:
            from perception_pkg.bag import get_typestore

            typestore = get_typestore()
        return cls(typestore.types.__getitem__, lambda name: _rosbags_defaults(typestore, name))

    @classmethod
    def like(cls, types: MsgTypes | MessageFactory) -> MessageFactory:
        """The factory of the same flavour as a :class:`MsgTypes` (rosbags: the project's typestore)."""
        if isinstance(types, MessageFactory):
            return types
        return cls.rclpy() if _is_rclpy_class(types.Header) else cls.rosbags()

    def cls(self, name: str) -> type:
        c = self._classes.get(name)
        if c is None:
            c = self._classes[name] = self._resolve(name)
        return c

    def __call__(self, name: str, **fields: Any) -> Any:
        if self._defaults is not None:
            fields = {**self._defaults(name), **fields}
        return self.cls(name)(**fields)


_BASE_DEFAULTS = {"string": "", "bool": False, "float32": 0.0, "float64": 0.0}
_NUMPY = {
    "float32": np.float32, "float64": np.float64, "uint8": np.uint8, "byte": np.uint8, "char": np.uint8,
    "int8": np.int8, "uint16": np.uint16, "int16": np.int16, "uint32": np.uint32, "int32": np.int32,
    "uint64": np.uint64, "int64": np.int64,
}  # fmt: skip


def _rosbags_defaults(typestore: Any, name: str) -> dict[str, Any]:
    _, fields = typestore.fielddefs[name]
    out: dict[str, Any] = {}
    for fname, (kind, detail) in fields:
        kind = int(kind)
        if kind == 1:  # BASE
            out[fname] = _BASE_DEFAULTS.get(detail[0], 0)
        elif kind == 2:  # NAME: a nested message
            out[fname] = typestore.types[detail](**_rosbags_defaults(typestore, detail))
        elif kind == 3:  # ARRAY (fixed size)
            (sub_kind, sub), size = detail
            base = sub[0] if int(sub_kind) == 1 else None
            if base in _NUMPY:
                out[fname] = np.zeros(size, dtype=_NUMPY[base])
            else:
                out[fname] = [_BASE_DEFAULTS.get(base, 0) for _ in range(size)]
        else:  # SEQUENCE: numpy for numeric elements, as rosbags' CDR writer expects
            (sub_kind, sub), _ = detail
            base = sub[0] if int(sub_kind) == 1 else None
            out[fname] = np.zeros(0, dtype=_NUMPY[base]) if base in _NUMPY else []
    return out


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


def _bbox(f: MessageFactory, box: NDArray) -> Any:
    x0, y0, x1, y1 = (float(v) for v in box)
    return f(
        "vision_msgs/msg/BoundingBox2D",
        center=f(
            "vision_msgs/msg/Pose2D",
            position=f(
                "vision_msgs/msg/Point2D", x=(x0 + x1) / 2 - PIXEL_SHIFT, y=(y0 + y1) / 2 - PIXEL_SHIFT
            ),
            theta=0.0,
        ),
        size_x=x1 - x0,
        size_y=y1 - y0,
    )


def people_to_person_array(
    header: Any,
    types: MsgTypes | MessageFactory,
    boxes: NDArray,
    person_scores: NDArray,
    keypoints: NDArray,
    keypoint_scores: NDArray,
    sigmas: NDArray | None = None,
) -> Any:
    """A ``perception_msgs/PersonArray`` from arrays in stack coordinates (``sigmas`` None -> NaN)."""
    f = MessageFactory.like(types)
    n = len(boxes)
    if keypoints.shape != (n, NUM_COCO_KEYPOINTS, 2) or keypoint_scores.shape != (n, NUM_COCO_KEYPOINTS):
        raise MessageFormatError(
            PERSON_ARRAY, "people[].keypoints", f"({n}, 17, 2) keypoints and ({n}, 17) scores",
            f"{keypoints.shape} and {keypoint_scores.shape}",
        )  # fmt: skip
    sig = np.full((n, NUM_COCO_KEYPOINTS), np.nan) if sigmas is None else sigmas
    # one (n, 17, 4) table turned into Python floats at once: per-element numpy scalars are slow
    table = np.concatenate([keypoints - PIXEL_SHIFT, keypoint_scores[..., None], sig[..., None]], -1).tolist()
    kp_cls = f.cls("perception_msgs/msg/Keypoint2D")
    people = []
    for i in range(n):
        kps = [kp_cls(x=x, y=y, score=s, sigma=g) for x, y, s, g in table[i]]
        people.append(
            f(
                "perception_msgs/msg/Person",
                bbox=_bbox(f, boxes[i]),
                score=float(person_scores[i]),
                keypoints=kps,
            )
        )
    return f(PERSON_ARRAY, header=header, people=people)


def pose_to_person_array(result: Any, header: Any, types: MsgTypes | MessageFactory) -> Any:
    """A ``perception_msgs/PersonArray`` from a :class:`perception_pkg.pose.PoseResult`."""
    return people_to_person_array(
        header, types, result.boxes, result.person_scores, result.keypoints, result.scores, result.sigmas
    )


def skeleton_markers(
    header: Any,
    types: MsgTypes | MessageFactory,
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
    f = MessageFactory.like(types)
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, NUM_COCO_KEYPOINTS, 2) - PIXEL_SHIFT
    ok = (np.asarray(scores).reshape(kp.shape[:2]) >= threshold) & np.isfinite(kp).all(-1)
    limb_ok = ok[:, _SKELETON[:, 0]] & ok[:, _SKELETON[:, 1]]  # (N, 19)
    ends = kp[:, _SKELETON][limb_ok].reshape(-1, 2) * pixel_size  # (2 * limbs, 2), pairs in order
    joints = kp[ok] * pixel_size
    point_cls = f.cls("geometry_msgs/msg/Point")

    def marker(mid: int, kind: int, xy: NDArray, width: float, rgba: tuple[float, ...]) -> Any:
        pts = [point_cls(x=x, y=y, z=0.0) for x, y in xy.tolist()]
        return f(
            "visualization_msgs/msg/Marker",
            header=header,
            ns=ns,
            id=mid,
            type=kind,
            action=_ADD if pts else _DELETE,
            pose=f("geometry_msgs/msg/Pose", orientation=f("geometry_msgs/msg/Quaternion", w=1.0)),
            scale=f("geometry_msgs/msg/Vector3", x=width, y=width, z=width),
            color=f("std_msgs/msg/ColorRGBA", r=rgba[0], g=rgba[1], b=rgba[2], a=rgba[3]),
            points=pts,
        )

    w = 3.0 * pixel_size
    return f(
        MARKER_ARRAY,
        markers=[
            marker(0, _LINE_LIST, ends, w, (0.1, 0.9, 0.2, 1.0)),
            marker(1, _POINTS, joints, 2 * w, (1.0, 0.3, 0.1, 1.0)),
        ],
    )
