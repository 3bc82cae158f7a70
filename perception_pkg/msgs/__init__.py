"""Message <-> numpy conversion for rclpy and rosbags message objects alike.

Readers are duck-typed on field names, so they take rclpy messages (byte fields are array.array),
rosbags messages (numpy fields) or anything with the same attributes. Writers build messages of the
classes of a ``MessageFactory`` (``MessageFactory.rclpy()`` or ``MessageFactory.rosbags()``).
Nothing here imports rclpy.
Malformed input raises ``MessageFormatError`` (a ValueError) naming the field, never anything else.
"""

from perception_pkg.msgs.camera_info import camera_info_to_model, model_to_camera_info
from perception_pkg.msgs.compressed import (
    CompressedFormat,
    array_to_compressed,
    compressed_to_array,
    parse_format,
)
from perception_pkg.msgs.detections import (
    bbox3d_to_kitti,
    detection2d_array,
    detection2d_array_to_xyxy,
    detection3d_array,
    detection3d_array_to_kitti,
    kitti_to_bbox3d,
)
from perception_pkg.msgs.errors import MessageFormatError
from perception_pkg.msgs.factory import MessageFactory
from perception_pkg.msgs.header import make_header, stamp_to_ns
from perception_pkg.msgs.image import (
    ENCODINGS,
    EncodingInfo,
    array_to_image,
    image_to_array,
    image_to_bgr,
    image_to_rgb,
)
from perception_pkg.msgs.people import (
    PeopleArrays,
    detections_to_person_boxes,
    people_to_person_array,
    person_array_to_arrays,
    pose_to_person_array,
)
from perception_pkg.msgs.pointcloud import (
    DATATYPES,
    pointcloud_to_structured,
    pointcloud_to_xyz,
    structured_to_pointcloud,
    xyz_to_pointcloud,
)

__all__ = [
    "DATATYPES",
    "ENCODINGS",
    "CompressedFormat",
    "EncodingInfo",
    "MessageFactory",
    "MessageFormatError",
    "PeopleArrays",
    "array_to_compressed",
    "array_to_image",
    "bbox3d_to_kitti",
    "camera_info_to_model",
    "compressed_to_array",
    "detection2d_array",
    "detection2d_array_to_xyxy",
    "detection3d_array",
    "detection3d_array_to_kitti",
    "detections_to_person_boxes",
    "image_to_array",
    "image_to_bgr",
    "image_to_rgb",
    "kitti_to_bbox3d",
    "make_header",
    "model_to_camera_info",
    "parse_format",
    "people_to_person_array",
    "person_array_to_arrays",
    "pointcloud_to_structured",
    "pointcloud_to_xyz",
    "pose_to_person_array",
    "stamp_to_ns",
    "structured_to_pointcloud",
    "xyz_to_pointcloud",
]
