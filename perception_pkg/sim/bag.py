"""Simulated frames as a rosbag2 written by :class:`perception_pkg.bag.BagWriter` (mcap; no ROS needed).

Topics (every message of a frame carries the frame's stamp; header frame ids in brackets):

=====================================  ======================================  ===================
/camera/image_raw                      sensor_msgs/msg/Image (rgb8)            [camera_optical]
/camera/camera_info                    sensor_msgs/msg/CameraInfo              [camera_optical]
/camera/<kind>/image_raw, camera_info  degraded copies (fog, rain, snow, ...)   [camera_optical]
/lidar/points                          sensor_msgs/msg/PointCloud2 x,y,z,i f32 [lidar]
/ground_truth/detections_2d            vision_msgs/msg/Detection2DArray        [camera_optical]
/ground_truth/detections_3d            vision_msgs/msg/Detection3DArray        [camera_optical]
/ground_truth/detections_3d_lidar      vision_msgs/msg/Detection3DArray        [lidar]
/ground_truth/people                   perception_msgs/msg/PersonArray         [camera_optical]
/tf                                    tf2_msgs/msg/TFMessage: map -> base_link, per frame
/tf_static                             tf2_msgs/msg/TFMessage: base_link -> lidar, camera_optical
=====================================  ======================================  ===================

Ground-truth conventions: class ids are the class names (``person``, ``car``); ``id`` is the
simulator's object id (stable over the sequence, so it doubles as a track id); scores are 1.
2D boxes are the modal boxes (truth.py). A 3D box's ``center`` is the box's geometric centre,
its orientation turns the object frame (x forward/length, y left/width, z up/height) into the header
frame, and ``size`` = (l, w, h). People: keypoints in COCO-17 order, ``score`` = v / 2 (1 visible,
0.5 occluded, 0 outside the image, where x = y = 0), ``sigma`` NaN. Camera-frame topics list the
objects with at least ``min_visible_pixels`` pixels; the LiDAR-frame topic those with at least
``min_lidar_points`` returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from perception_pkg.sim.render import Frame
from perception_pkg.sim.scene import Scene
from perception_pkg.sim.truth import Box3D, ObjectGT

if TYPE_CHECKING:  # rosbags is imported when a bag is written, not with the simulator
    from perception_pkg.bag import BagWriter

MIN_VISIBLE_PIXELS = 20
MIN_LIDAR_POINTS = 5

TOPIC_IMAGE = "/camera/image_raw"
TOPIC_INFO = "/camera/camera_info"
TOPIC_POINTS = "/lidar/points"
TOPIC_DET2D = "/ground_truth/detections_2d"
TOPIC_DET3D = "/ground_truth/detections_3d"
TOPIC_DET3D_LIDAR = "/ground_truth/detections_3d_lidar"
TOPIC_PEOPLE = "/ground_truth/people"


def weather_topics(kind: str) -> tuple[str, str]:
    return f"/camera/{kind}/image_raw", f"/camera/{kind}/camera_info"


def _quat(rotation: np.ndarray) -> tuple[float, float, float, float]:
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(rotation).as_quat()
    return float(x), float(y), float(z), float(w)


class GroundTruthMessages:
    """Builds ground-truth messages (rosbags classes) for frames of one scene."""

    def __init__(self, typestore: Any = None) -> None:
        if typestore is None:
            from perception_pkg.bag import get_typestore

            typestore = get_typestore()
        self.ts = typestore
        self.t = typestore.types

    # small builders --------------------------------------------------------------------------------
    def header(self, stamp_ns: int, frame_id: str) -> Any:
        from perception_pkg.msgs import MessageFactory, make_header

        return make_header(MessageFactory.rosbags(self.ts), stamp_ns, frame_id)

    def pose(self, position, rotation: np.ndarray | None = None) -> Any:
        t = self.t
        qx, qy, qz, qw = (0.0, 0.0, 0.0, 1.0) if rotation is None else _quat(rotation)
        return t["geometry_msgs/msg/Pose"](
            position=t["geometry_msgs/msg/Point"](
                x=float(position[0]), y=float(position[1]), z=float(position[2])
            ),
            orientation=t["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw),
        )

    def hypothesis(self, cls: str, pose: Any) -> Any:
        t = self.t
        return t["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=t["vision_msgs/msg/ObjectHypothesis"](class_id=cls, score=1.0),
            pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
        )

    def bbox2d(self, box: np.ndarray) -> Any:
        t = self.t
        x0, y0, x1, y1 = (float(v) for v in box)
        return t["vision_msgs/msg/BoundingBox2D"](
            center=t["vision_msgs/msg/Pose2D"](
                position=t["vision_msgs/msg/Point2D"](x=(x0 + x1) / 2, y=(y0 + y1) / 2), theta=0.0
            ),
            size_x=x1 - x0,
            size_y=y1 - y0,
        )

    def transform(self, header: Any, child: str, tf: np.ndarray) -> Any:
        t = self.t
        qx, qy, qz, qw = _quat(tf[:3, :3])
        return t["geometry_msgs/msg/TransformStamped"](
            header=header,
            child_frame_id=child,
            transform=t["geometry_msgs/msg/Transform"](
                translation=t["geometry_msgs/msg/Vector3"](
                    x=float(tf[0, 3]), y=float(tf[1, 3]), z=float(tf[2, 3])
                ),
                rotation=t["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw),
            ),
        )

    # per-frame messages ----------------------------------------------------------------------------
    def detections_2d(self, frame: Frame, frame_id: str, min_pixels: int = MIN_VISIBLE_PIXELS) -> Any:
        t = self.t
        header = self.header(frame.stamp_ns, frame_id)
        dets = []
        for o in _in_camera(frame.objects, min_pixels):
            assert o.box2d is not None
            centre = ((o.box2d[0] + o.box2d[2]) / 2, (o.box2d[1] + o.box2d[3]) / 2, 0.0)
            dets.append(
                t["vision_msgs/msg/Detection2D"](
                    header=header,
                    results=[self.hypothesis(o.cls, self.pose(centre))],
                    bbox=self.bbox2d(o.box2d),
                    id=str(o.oid),
                )
            )
        return t["vision_msgs/msg/Detection2DArray"](header=header, detections=dets)

    def detections_3d(self, frame: Frame, frame_id: str, objects: Iterable[ObjectGT], lidar: bool) -> Any:
        t = self.t
        header = self.header(frame.stamp_ns, frame_id)
        dets = []
        for o in objects:
            box: Box3D = o.box3d_lidar if lidar else o.box3d_camera
            pose = self.pose(box.centre, box.rotation)
            dets.append(
                t["vision_msgs/msg/Detection3D"](
                    header=header,
                    results=[self.hypothesis(o.cls, pose)],
                    bbox=t["vision_msgs/msg/BoundingBox3D"](
                        center=pose,
                        size=t["geometry_msgs/msg/Vector3"](
                            x=float(box.size[0]), y=float(box.size[1]), z=float(box.size[2])
                        ),
                    ),
                    id=str(o.oid),
                )
            )
        return t["vision_msgs/msg/Detection3DArray"](header=header, detections=dets)

    def people(self, frame: Frame, frame_id: str, min_pixels: int = MIN_VISIBLE_PIXELS) -> Any:
        t = self.t
        header = self.header(frame.stamp_ns, frame_id)
        people = []
        for o in _in_camera(frame.objects, min_pixels):
            if o.keypoints is None:
                continue
            assert o.box2d is not None
            kps = []
            for x, y, v in o.keypoints:
                # COCO writes x = y = 0 for keypoints outside the image (v = 0)
                x, y = (float(x), float(y)) if v > 0 else (0.0, 0.0)
                kps.append(
                    t["perception_msgs/msg/Keypoint2D"](x=x, y=y, score=float(v) / 2.0, sigma=float("nan"))
                )
            people.append(
                t["perception_msgs/msg/Person"](bbox=self.bbox2d(o.box2d), score=1.0, keypoints=kps)
            )
        return t["perception_msgs/msg/PersonArray"](header=header, people=people)


def _in_camera(objects: Iterable[ObjectGT], min_pixels: int) -> list[ObjectGT]:
    return [o for o in objects if o.box2d is not None and o.visible_pixels >= min_pixels]


class SimBagWriter:
    """Context manager writing frames (and their degraded images) into one rosbag2 mcap."""

    def __init__(
        self,
        path: str | Path,
        scene: Scene,
        weather: Sequence[str] = (),
        *,
        min_visible_pixels: int = MIN_VISIBLE_PIXELS,
        min_lidar_points: int = MIN_LIDAR_POINTS,
        typestore: Any = None,
        custom_data: dict[str, str] | None = None,
    ) -> None:
        from perception_pkg.bag import get_typestore

        self.path = Path(path)
        self.scene = scene
        self.weather = tuple(weather)
        self.min_visible_pixels = min_visible_pixels
        self.min_lidar_points = min_lidar_points
        self.ts = typestore or get_typestore()
        self.gt = GroundTruthMessages(self.ts)
        self._writer: BagWriter | None = None
        self._static_written = False
        self.custom_data = dict(custom_data or {})

    def __enter__(self) -> SimBagWriter:
        from perception_pkg.bag import BagWriter

        self._writer = BagWriter(self.path, typestore=self.ts, custom_data=self.custom_data).open()
        topics = [
            (TOPIC_IMAGE, "sensor_msgs/msg/Image"),
            (TOPIC_INFO, "sensor_msgs/msg/CameraInfo"),
        ]
        for kind in self.weather:
            img, info = weather_topics(kind)
            topics += [(img, "sensor_msgs/msg/Image"), (info, "sensor_msgs/msg/CameraInfo")]
        topics += [
            (TOPIC_POINTS, "sensor_msgs/msg/PointCloud2"),
            (TOPIC_DET2D, "vision_msgs/msg/Detection2DArray"),
            (TOPIC_DET3D, "vision_msgs/msg/Detection3DArray"),
            (TOPIC_DET3D_LIDAR, "vision_msgs/msg/Detection3DArray"),
            (TOPIC_PEOPLE, "perception_msgs/msg/PersonArray"),
            ("/tf", "tf2_msgs/msg/TFMessage"),
        ]
        for topic, msgtype in topics:
            self._writer.add_connection(topic, msgtype)
        # /tf_static is latched in ROS 2: a late subscriber (RViz) still gets it on replay
        self._writer.add_connection("/tf_static", "tf2_msgs/msg/TFMessage", latched=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _put(self, topic: str, msg: Any, stamp_ns: int) -> None:
        assert self._writer is not None, "write inside the with block"
        self._writer.write(topic, stamp_ns, msg)

    def write(self, frame: Frame, degraded: dict[str, np.ndarray] | None = None) -> None:
        """Write one frame; ``degraded`` maps weather kind -> RGB image (same size as the frame)."""
        from perception_pkg.msgs import (
            MessageFactory,
            array_to_image,
            model_to_camera_info,
            xyz_to_pointcloud,
        )

        types = MessageFactory.rosbags(self.ts)
        stamp = frame.stamp_ns
        rig = self.scene.rig
        cam_id, lidar_id = rig.camera.frame_id, rig.lidar.frame_id
        cam_header = self.gt.header(stamp, cam_id)
        info = model_to_camera_info(camera_model(self.scene), cam_header, types)
        if not self._static_written:
            tf_header = self.gt.header(stamp, "base_link")
            self._put("/tf_static", self.ts.types["tf2_msgs/msg/TFMessage"](transforms=[
                self.gt.transform(tf_header, lidar_id, rig.T_base_lidar),
                self.gt.transform(tf_header, cam_id, rig.T_base_camera),
            ]), stamp)  # fmt: skip
            self._static_written = True
        self._put(TOPIC_IMAGE, array_to_image(frame.image, "rgb8", cam_header, types), stamp)
        self._put(TOPIC_INFO, info, stamp)
        for kind in self.weather:
            if degraded is None or kind not in degraded:
                raise ValueError(f"frame {frame.index}: no degraded image for {kind!r}")
            img_topic, info_topic = weather_topics(kind)
            self._put(img_topic, array_to_image(degraded[kind], "rgb8", cam_header, types), stamp)
            self._put(info_topic, info, stamp)
        lidar_header = self.gt.header(stamp, lidar_id)
        cloud = xyz_to_pointcloud(frame.points[:, :3], lidar_header, types, intensity=frame.points[:, 3])
        self._put(TOPIC_POINTS, cloud, stamp)
        self._put(TOPIC_DET2D, self.gt.detections_2d(frame, cam_id, self.min_visible_pixels), stamp)
        in_cam = _in_camera(frame.objects, self.min_visible_pixels)
        self._put(TOPIC_DET3D, self.gt.detections_3d(frame, cam_id, in_cam, lidar=False), stamp)
        in_lidar = [o for o in frame.objects if o.num_lidar_points >= self.min_lidar_points]
        self._put(TOPIC_DET3D_LIDAR, self.gt.detections_3d(frame, lidar_id, in_lidar, lidar=True), stamp)
        self._put(TOPIC_PEOPLE, self.gt.people(frame, cam_id, self.min_visible_pixels), stamp)
        tf = self.ts.types["tf2_msgs/msg/TFMessage"](
            transforms=[self.gt.transform(self.gt.header(stamp, "map"), "base_link", frame.T_map_base)]
        )
        self._put("/tf", tf, stamp)


def camera_model(scene: Scene) -> Any:
    """The simulated camera as a CameraModel (no distortion)."""
    from perception_pkg.geometry3d.camera import CameraModel

    cam = scene.rig.camera
    return CameraModel(
        width=cam.width,
        height=cam.height,
        K=cam.K,
        D=np.zeros(5),
        R=np.eye(3),
        P=cam.P,
        distortion_model="plumb_bob",
        frame_id=cam.frame_id,
    )
