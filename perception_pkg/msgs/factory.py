"""The one message factory: ROS message classes for a live node (rclpy) or a bag (rosbags).

Writers take a :class:`MessageFactory` instead of importing message packages, so the same builders
make messages for a node (``MessageFactory.rclpy()``) and for replay (``MessageFactory.rosbags()``)
and nothing here imports rclpy. Two ways to use it:

- ``types.Image(...)``, ``types.Detection2D(...)``: the message class by its short name (the names in
  :data:`SHORT_NAMES`), constructed with every field given, as generated code does;
- ``types("perception_msgs/msg/Person", score=...)``: by full ROS name, with the fields not given set
  to their ROS defaults (rosbags dataclasses have no defaults; rclpy's classes fill them themselves).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

# short name -> ROS type name: every message the builders in msgs/ and viz/ construct
SHORT_NAMES: dict[str, str] = {
    "Header": "std_msgs/msg/Header",
    "ColorRGBA": "std_msgs/msg/ColorRGBA",
    "Time": "builtin_interfaces/msg/Time",
    "Duration": "builtin_interfaces/msg/Duration",
    "Image": "sensor_msgs/msg/Image",
    "CompressedImage": "sensor_msgs/msg/CompressedImage",
    "CameraInfo": "sensor_msgs/msg/CameraInfo",
    "PointCloud2": "sensor_msgs/msg/PointCloud2",
    "PointField": "sensor_msgs/msg/PointField",
    "RegionOfInterest": "sensor_msgs/msg/RegionOfInterest",
    "Pose": "geometry_msgs/msg/Pose",
    "PoseWithCovariance": "geometry_msgs/msg/PoseWithCovariance",
    "Point": "geometry_msgs/msg/Point",
    "Quaternion": "geometry_msgs/msg/Quaternion",
    "Vector3": "geometry_msgs/msg/Vector3",
    "Detection2DArray": "vision_msgs/msg/Detection2DArray",
    "Detection2D": "vision_msgs/msg/Detection2D",
    "BoundingBox2D": "vision_msgs/msg/BoundingBox2D",
    "Pose2D": "vision_msgs/msg/Pose2D",
    "Point2D": "vision_msgs/msg/Point2D",
    "ObjectHypothesisWithPose": "vision_msgs/msg/ObjectHypothesisWithPose",
    "ObjectHypothesis": "vision_msgs/msg/ObjectHypothesis",
    "Detection3DArray": "vision_msgs/msg/Detection3DArray",
    "Detection3D": "vision_msgs/msg/Detection3D",
    "BoundingBox3D": "vision_msgs/msg/BoundingBox3D",
    "MarkerArray": "visualization_msgs/msg/MarkerArray",
    "Marker": "visualization_msgs/msg/Marker",
    "MeshFile": "visualization_msgs/msg/MeshFile",
    "PersonArray": "perception_msgs/msg/PersonArray",
    "Person": "perception_msgs/msg/Person",
    "Keypoint2D": "perception_msgs/msg/Keypoint2D",
}


def _rclpy_class(name: str) -> type:
    pkg, _, msg = name.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), msg)


class MessageFactory:
    """Message classes of one flavour. Equal factories (same flavour and typestore) compare equal."""

    def __init__(
        self,
        flavour: str,
        resolve: Callable[[str], type],
        defaults: Callable[[str], dict[str, Any]] | None,
        key: object = None,
    ) -> None:
        self.flavour = flavour
        self._resolve = resolve
        self._defaults = defaults
        self._key = (flavour, key)
        self._classes: dict[str, type] = {}

    @classmethod
    def rclpy(cls) -> MessageFactory:
        """rclpy's generated classes (a ROS 2 install or the ros-jazzy-* wheels and our interfaces)."""
        return cls("rclpy", _rclpy_class, None)

    @classmethod
    def rosbags(cls, typestore: Any = None) -> MessageFactory:
        """rosbags dataclasses from ``typestore`` (default: the project's Jazzy typestore, whose
        factory is shared)."""
        if typestore is None:
            return _default_rosbags()
        return cls(
            "rosbags",
            typestore.types.__getitem__,
            lambda name: _rosbags_defaults(typestore, name),
            key=id(typestore),
        )

    @property
    def is_rclpy(self) -> bool:
        return self.flavour == "rclpy"

    def cls(self, name: str) -> type:
        """The class of a full (``pkg/msg/Name``) or short (``Name``) message name."""
        full = SHORT_NAMES.get(name, name)
        c = self._classes.get(full)
        if c is None:
            c = self._classes[full] = self._resolve(full)
        return c

    def __call__(self, name: str, **fields: Any) -> Any:
        """A message of type ``name``; fields not given take ROS defaults."""
        full = SHORT_NAMES.get(name, name)
        if self._defaults is not None:
            fields = {**self._defaults(full), **fields}
        return self.cls(full)(**fields)

    def __getattr__(self, short: str) -> type:
        if short in SHORT_NAMES:
            return self.cls(short)
        raise AttributeError(f"MessageFactory has no message class {short!r} (see SHORT_NAMES)")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MessageFactory) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"MessageFactory.{self.flavour}()"


@lru_cache(maxsize=1)
def _default_rosbags() -> MessageFactory:
    from perception_pkg.bag.typestore import get_typestore

    return MessageFactory.rosbags(get_typestore())


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
