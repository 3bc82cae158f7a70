"""datasets/recordings.py: image folders and videos read through the BagReader API, and replayed."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from perception_pkg.bag import open_bag
from perception_pkg.datasets.recordings import kind_of, open_recording
from perception_pkg.msgs import camera_info_to_model, image_to_bgr, stamp_to_ns

CALIB = """P0: 700 0 600 0 0 700 180 0 0 0 1 0
P1: 700 0 600 -380 0 700 180 0 0 0 1 0
P2: 721.5 0 609.6 44.9 0 721.5 172.9 0.2 0 0 1 0.003
P3: 721.5 0 609.6 -339.5 0 721.5 172.9 2.2 0 0 1 0.003
R0_rect: 1 0 0 0 1 0 0 0 1
Tr_velo_to_cam: 0 -1 0 0 0 0 -1 0 1 0 0 0
"""


def _frames(n: int = 3, hw: tuple[int, int] = (48, 64)) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for _ in range(n)]


def _kitti_folder(tmp_path: Path, frames: list[np.ndarray]) -> Path:
    (tmp_path / "image_2").mkdir()
    (tmp_path / "calib").mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / "image_2" / f"{i:06d}.png"), f)
        (tmp_path / "calib" / f"{i:06d}.txt").write_text(CALIB)
    (tmp_path / "image_2" / "notes.txt").write_text("not an image")
    return tmp_path / "image_2"


def test_an_image_folder_reads_as_stamped_images_with_kitti_camera_info(tmp_path: Path) -> None:
    frames = _frames()
    folder = _kitti_folder(tmp_path, frames)
    assert kind_of(folder) == "images"
    with open_recording(folder, fps=20.0) as rec:
        assert rec.topics == {
            "/camera/image_raw": "sensor_msgs/msg/Image",
            "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
        }
        got = list(rec.decoded())
    assert rec.message_count == 6 and rec.duration == 100_000_000
    assert [m.topic for m, _ in got] == ["/camera/camera_info", "/camera/image_raw"] * 3
    images = [msg for m, msg in got if m.topic == "/camera/image_raw"]
    for i, (img, want) in enumerate(zip(images, frames, strict=True)):
        assert stamp_to_ns(img.header) == 1_700_000_000_000_000_000 + i * 50_000_000
        np.testing.assert_array_equal(image_to_bgr(img), want)  # PNG is lossless: every pixel
    cam = camera_info_to_model(got[0][1])
    assert (cam.width, cam.height, cam.frame_id) == (64, 48, "camera")
    np.testing.assert_allclose(cam.P[0], [721.5, 0, 609.6, 44.9])


def test_a_video_reads_frame_by_frame_without_camera_info(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (64, 48))
    assert writer.isOpened()
    for f in _frames(4):
        writer.write(f)
    writer.release()
    assert kind_of(path) == "video"
    with open_recording(path, fps=5.0) as rec:
        assert list(rec.topics) == ["/camera/image_raw"]
        images = [msg for _, msg in rec.decoded()]
    assert len(images) == 4 and (images[0].height, images[0].width, images[0].encoding) == (48, 64, "bgr8")
    assert stamp_to_ns(images[1].header) - stamp_to_ns(images[0].header) == 200_000_000


def test_a_file_that_is_no_recording_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ValueError, match="not a recording"):
        open_recording(tmp_path / "x.txt")
    with pytest.raises(FileNotFoundError):
        open_recording(tmp_path / "missing")


def test_an_unreadable_image_is_counted_not_raised(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), _frames(1)[0])
    (folder / "b.png").write_bytes(b"\x89PNG broken")
    with open_recording(folder) as rec:
        assert len(list(rec.decoded())) == 1
    assert rec.malformed == {"/camera/image_raw": 1}


def test_replay_runs_detection_on_an_image_folder_with_3d_from_its_calibration(tmp_path: Path) -> None:
    from perception_pkg.detection import default_detector_card
    from perception_pkg.replay import replay_bag

    if not default_detector_card().is_file():
        pytest.skip("shipped detector absent")
    folder = _kitti_folder(tmp_path, _frames(2, (96, 128)))
    res = replay_bag(folder, tmp_path / "out", ["detection"], progress=False)
    counters = res.summary["pipelines"]["detection"]["counters"]
    assert counters["no_camera_info"] == "0" and counters["camera_info_late"] == "0"
    with open_bag(res.output_bag) as reader:
        topics = {}
        for m in reader.messages():
            topics[m.topic] = topics.get(m.topic, 0) + 1
    assert topics["/camera/image_raw"] == 2 and topics["/detection/detections_2d"] == 2
    assert topics["/detection/detections_3d"] == 2


def _ros1_bag(path: Path) -> list[np.ndarray]:
    """A real ROS 1 bag (rosbags' rosbag1 writer, Noetic definitions): 3 images and 3 clouds."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS1_NOETIC)
    t = ts.types
    frames = _frames(3)
    with Writer(path) as w:
        ci = w.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        cc = w.add_connection("/lidar/points", "sensor_msgs/msg/PointCloud2", typestore=ts)
        for i, f in enumerate(frames):
            stamp = t["builtin_interfaces/msg/Time"](sec=100 + i, nanosec=5)
            header = t["std_msgs/msg/Header"](seq=i, stamp=stamp, frame_id="cam")
            img = t["sensor_msgs/msg/Image"](
                header=header, height=48, width=64, encoding="bgr8", is_bigendian=0, step=64 * 3,
                data=f.reshape(-1),
            )  # fmt: skip
            w.write(ci, (100 + i) * 10**9, ts.serialize_ros1(img, "sensor_msgs/msg/Image"))
            xyz = np.array([[5.0, 0, 0], [200.0, 0, 0]], np.float32)
            fields = [
                t["sensor_msgs/msg/PointField"](name=n, offset=4 * k, datatype=7, count=1)
                for k, n in enumerate("xyz")
            ]
            cloud = t["sensor_msgs/msg/PointCloud2"](
                header=t["std_msgs/msg/Header"](seq=i, stamp=stamp, frame_id="lidar"), height=1, width=2,
                fields=fields, is_bigendian=False, point_step=12, row_step=24,
                data=xyz.view(np.uint8).reshape(-1), is_dense=True,
            )  # fmt: skip
            w.write(cc, (100 + i) * 10**9, ts.serialize_ros1(cloud, "sensor_msgs/msg/PointCloud2"))
    return frames


def test_a_ros1_bag_replays_into_a_ros2_bag_with_stamps_frames_and_data_kept(tmp_path: Path) -> None:
    from perception_pkg.bag import get_typestore
    from perception_pkg.msgs import pointcloud_to_xyz
    from perception_pkg.replay import replay_bag

    frames = _ros1_bag(tmp_path / "in.bag")
    res = replay_bag(tmp_path / "in.bag", tmp_path / "out", ["cloud_filter"], progress=False)
    assert res.summary["pipelines"]["cloud_filter"]["messages"] == 3
    store = get_typestore()
    got: dict[str, list] = {}
    with open_bag(res.output_bag) as reader:  # every message must read back as ROS 2 CDR
        for m in reader.messages():
            got.setdefault(m.topic, []).append(store.deserialize_cdr(m.raw, m.msgtype))
    assert [len(got[t]) for t in ("/camera/image_raw", "/lidar/points", "/lidar/points_filtered")] == [
        3,
        3,
        3,
    ]
    for i, (img, want) in enumerate(zip(got["/camera/image_raw"], frames, strict=True)):
        assert (img.header.stamp.sec, img.header.stamp.nanosec, img.header.frame_id) == (100 + i, 5, "cam")
        np.testing.assert_array_equal(image_to_bgr(img), want)
    kept = pointcloud_to_xyz(got["/lidar/points_filtered"][0])
    np.testing.assert_array_equal(kept, [[5.0, 0.0, 0.0]])  # 200 m is beyond the default range_max
