"""One message of each type we publish, filled with distinctive values (shared by both processes)."""

from __future__ import annotations

import array
from typing import Any


def build() -> dict[str, Any]:
    """topic -> message (rclpy types)."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from geometry_msgs.msg import Pose, Vector3
    from perception_msgs.msg import Keypoint2D, Person, PersonArray
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
    from std_msgs.msg import Header
    from vision_msgs.msg import (
        BoundingBox2D,
        BoundingBox3D,
        Detection2D,
        Detection2DArray,
        Detection3D,
        Detection3DArray,
        ObjectHypothesis,
        ObjectHypothesisWithPose,
    )
    from visualization_msgs.msg import Marker, MarkerArray

    header = Header(frame_id="camera_optical")
    header.stamp.sec, header.stamp.nanosec = 1700000000, 123456789

    box2d = BoundingBox2D(size_x=40.5, size_y=80.25)
    box2d.center.position.x, box2d.center.position.y, box2d.center.theta = 320.5, 240.25, 0.0
    hyp = ObjectHypothesisWithPose(hypothesis=ObjectHypothesis(class_id="person", score=0.875))
    det2d = Detection2DArray(
        header=header, detections=[Detection2D(header=header, results=[hyp], bbox=box2d, id="7")]
    )
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = 2.0, 1.6, 25.0
    pose.orientation.y, pose.orientation.w = 0.14943813, 0.98877108
    car = ObjectHypothesisWithPose(hypothesis=ObjectHypothesis(class_id="car", score=0.5))
    det3d = Detection3DArray(
        header=header,
        detections=[
            Detection3D(
                header=header,
                results=[car],
                id="c1",
                bbox=BoundingBox3D(center=pose, size=Vector3(x=3.89, y=1.53, z=1.62)),
            )
        ],
    )
    kps = [
        Keypoint2D(x=float(i), y=float(2 * i), score=0.5, sigma=float("nan") if i % 2 else 1.5)
        for i in range(17)
    ]
    people = PersonArray(header=header, people=[Person(bbox=box2d, score=0.9, keypoints=kps)])
    image = Image(header=header, height=2, width=3, encoding="rgb8", step=9, data=array.array("B", range(18)))
    cloud = PointCloud2(
        header=header,
        height=1,
        width=2,
        point_step=12,
        row_step=24,
        is_dense=True,
        fields=[
            PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
            for i, n in enumerate("xyz")
        ],
        data=array.array("B", bytes(range(24))),
    )
    info = CameraInfo(
        header=header,
        width=640,
        height=480,
        distortion_model="plumb_bob",
        d=[0.1, -0.2, 0.0, 0.0, 0.0],
        k=[500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0],
    )
    jpeg = CompressedImage(header=header, format="jpeg", data=array.array("B", b"\xff\xd8\xff\xd9"))
    markers = MarkerArray(markers=[Marker(header=header, ns="boxes", id=3, type=Marker.CUBE)])
    diag = DiagnosticArray(
        header=header,
        status=[
            DiagnosticStatus(
                name="n", level=DiagnosticStatus.WARN, values=[KeyValue(key="dropped", value="2")]
            )
        ],
    )
    return {
        "/types/detections2d": det2d,
        "/types/detections3d": det3d,
        "/types/people": people,
        "/types/image": image,
        "/types/cloud": cloud,
        "/types/camera_info": info,
        "/types/compressed": jpeg,
        "/types/markers": markers,
        "/types/diagnostics": diag,
    }
