"""The detection node over real rclpy: a child process publishes simulator frames (Image, CompressedImage,
CameraInfo) with known stamps, the node runs in this process, a subscriber checks what comes out.

Run as a script (``python tests/test_ros_nodes_detection.py publish FRAMES.npz PREFIX``) it is that child.
"""

from __future__ import annotations

import array
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.detection import FixedDetector, SimBag, iou, make_sim_bag, planted_for_frame

pytestmark = pytest.mark.ros

PREFIX = "/test_det"
THIS = Path(__file__).resolve()


# --- the child: publishes the frames of an npz until interrupted ------------------------------------
def _publish_frames(npz: str, prefix: str) -> None:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    from perception_pkg.geometry3d.camera import CameraModel
    from perception_pkg.msgs import (
        MessageFactory,
        array_to_compressed,
        array_to_image,
        make_header,
        model_to_camera_info,
    )
    from perception_pkg.ros.dds import use_large_message_profile

    data = np.load(npz)
    frame_id = str(data["frame_id"])
    h, w = data["images"].shape[1:3]
    camera = CameraModel(w, h, data["K"], np.zeros(5), np.eye(3), data["P"], "plumb_bob", frame_id)
    use_large_message_profile()
    rclpy.init()
    node = rclpy.create_node("sim_frame_publisher")
    types = MessageFactory.rclpy()
    msgs = []
    for rgb, stamp in zip(data["images"], data["stamps"].tolist(), strict=True):
        header = make_header(types, stamp, frame_id)
        msgs.append(
            (
                model_to_camera_info(camera, header, types),
                array_to_image(rgb, "rgb8", header, types),
                array_to_compressed(rgb, header, types, color="rgb", quality=95),
            )
        )
    qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    pubs = (
        node.create_publisher(CameraInfo, f"{prefix}/camera_info", qos),
        node.create_publisher(Image, f"{prefix}/image_raw", qos),
        node.create_publisher(CompressedImage, f"{prefix}/image_raw/compressed", qos),
    )
    print("ready", flush=True)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            for triple in msgs:
                for pub, msg in zip(pubs, triple, strict=True):
                    pub.publish(msg)
                rclpy.spin_once(node, timeout_sec=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__" and sys.argv[1:2] == ["publish"]:
    _publish_frames(sys.argv[2], sys.argv[3])
    sys.exit(0)

from helpers.ros_harness import child_process, output_of, publish_until, ros_node, spin_until  # noqa: E402

from perception_pkg.detection import default_detector_card  # noqa: E402


# --- fixtures and helpers -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimBag:
    return make_sim_bag(tmp_path_factory.mktemp("det_node_sim"))


def _frames_npz(sim: SimBag, path: Path) -> Path:
    np.savez(
        path,
        images=np.stack(sim.images),
        stamps=np.array(sim.stamps, dtype=np.int64),
        K=sim.camera.K,
        P=sim.camera.P,
        frame_id=np.array(sim.frame_id),
    )
    return path


def _ns(msg: Any) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _diag(msgs: list) -> dict[str, str]:
    for m in reversed(msgs):
        for st in m.status:
            if st.name.endswith("/detection"):
                return {kv.key: kv.value for kv in st.values}
    return {}


@contextmanager
def detection_node(context: Any, overrides: dict[str, Any], detector: Any = None) -> Iterator[Any]:
    """A DetectionNode in this process, spun by a multi-threaded executor on a thread."""
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from perception_pkg.ros.nodes.detection import DetectionNode

    params = {"diagnostics_period_s": 0.2, "log_throttle_s": 0.0, "backend": "onnxruntime", "threads": 1}
    params.update(overrides)
    node = DetectionNode(
        context=context,
        detector=detector,
        parameter_overrides=[Parameter(k, value=v) for k, v in params.items()],
    )
    executor = MultiThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        yield node
    finally:
        executor.shutdown()
        node.destroy_node()


def _reliable(depth: int = 10) -> Any:
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)


def _topics(compressed: bool = False) -> dict[str, Any]:
    image = f"{PREFIX}/image_raw" + ("/compressed" if compressed else "")
    return {"image_topic": image, "camera_info_topic": f"{PREFIX}/camera_info", "compressed": compressed}


# --- tests --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compressed", [False, True], ids=["image", "compressed"])
def test_planted_model_boxes_arrive_exactly_with_the_input_stamp_and_frame(
    ros_domain: int, sim: SimBag, tmp_path: Path, compressed: bool
) -> None:
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from perception_pkg.msgs import detection2d_array_to_xyxy

    planted = planted_for_frame(tmp_path / "model", sim)
    npz = _frames_npz(sim, tmp_path / "frames.npz")
    dets: list = []
    annotated: list = []
    overrides = {"model_card": str(planted.card), "score_threshold": 0.3, **_topics(compressed)}
    with (
        ros_node("det_test_driver") as driver,
        child_process([str(THIS), "publish", str(npz), PREFIX]) as child,
        detection_node(driver.context, overrides) as node,
    ):
        driver.create_subscription(Detection2DArray, "/detection/detections_2d", dets.append, _reliable())
        assert node.count_subscribers("/detection/annotated") == 0
        got = lambda: {_ns(m) for m in dets} >= set(sim.stamps) or child.poll() is not None  # noqa: E731
        assert spin_until(driver, got, 30) and child.poll() is None, output_of(child)
        for msg in dets:
            assert _ns(msg) in sim.stamps and msg.header.frame_id == sim.frame_id
        first = next(m for m in dets if _ns(m) == sim.stamps[0])
        boxes, scores, labels = detection2d_array_to_xyxy(first)
        assert labels == planted.labels
        assert np.abs(boxes - planted.boxes).max() < 0.01  # the frame's ground truth, through the node
        np.testing.assert_allclose(scores, planted.scores, atol=1e-6)
        assert [d.id for d in first.detections] == [str(i) for i in range(len(labels))]
        assert node.stats.snapshot().malformed == 0
        # the annotated image is drawn only once someone subscribes, with the input's header
        driver.create_subscription(Image, "/detection/annotated", annotated.append, _reliable(2))
        assert spin_until(driver, lambda: len(annotated) >= 2, 20), output_of(child)
        img = annotated[-1]
        assert (img.encoding, img.height, img.width) == ("bgr8", *sim.images[0].shape[:2])
        assert _ns(img) in sim.stamps and img.header.frame_id == sim.frame_id


def test_3d_boxes_markers_and_camera_info_checks(ros_domain: int, sim: SimBag, tmp_path: Path) -> None:
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection3DArray
    from visualization_msgs.msg import Marker, MarkerArray

    from perception_pkg.msgs import MessageFactory, array_to_image, detection3d_array_to_kitti, make_header

    boxes3d, labels = sim.gt3d[0]
    fixed = FixedDetector(np.tile([10.0, 20.0, 60.0, 90.0], (len(labels), 1)), labels, boxes3d)
    npz = _frames_npz(sim, tmp_path / "frames.npz")
    out3d: list = []
    markers: list = []
    diags: list = []
    with ros_node("det_test_driver3d") as driver:
        driver.create_subscription(Detection3DArray, "/detection/detections_3d", out3d.append, _reliable())
        driver.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
        with detection_node(driver.context, _topics(), detector=fixed) as node:
            # an image before any CameraInfo: 2D only, counted as no_camera_info
            pub = driver.create_publisher(Image, f"{PREFIX}/image_raw", _reliable())
            types = MessageFactory.rclpy()
            lone = array_to_image(sim.images[0], "rgb8", make_header(types, 42, sim.frame_id), types)
            assert publish_until(driver, pub, lone, lambda: any(_ns(m) == 42 for m in out3d))
            assert next(m for m in out3d if _ns(m) == 42).detections == []
            assert spin_until(driver, lambda: int(_diag(diags).get("no_camera_info", 0)) >= 1, 5), _diag(
                diags
            )

            with child_process([str(THIS), "publish", str(npz), PREFIX]) as child:
                driver.create_subscription(MarkerArray, "/detection/markers", markers.append, _reliable())
                got = lambda: {_ns(m) for m in out3d if m.detections} >= set(sim.stamps)  # noqa: E731
                assert spin_until(driver, got, 30), output_of(child)
                assert spin_until(driver, lambda: any(m.markers for m in markers), 10)
                # an image in another frame than the CameraInfo: no 3D, counted as a mismatch
                other = array_to_image(sim.images[0], "rgb8", make_header(types, 43, "other_camera"), types)
                assert publish_until(driver, pub, other, lambda: any(_ns(m) == 43 for m in out3d))
                assert child.poll() is None, output_of(child)
            assert next(m for m in out3d if _ns(m) == 43).detections == []
            assert spin_until(driver, lambda: int(_diag(diags).get("camera_info_mismatch", 0)) >= 1, 5)
            assert node.stats.snapshot().errors == 0
    msg = next(m for m in out3d if _ns(m) == sim.stamps[0])
    assert msg.header.frame_id == sim.frame_id
    kitti, _, got_labels, ids = detection3d_array_to_kitti(msg)
    np.testing.assert_allclose(kitti, boxes3d, atol=1e-9)  # the simulator's own 3D truth, via the node
    assert got_labels == labels and ids == [str(i) for i in range(len(labels))]
    boxes = [
        m for arr in markers for m in arr.markers if m.type == Marker.LINE_LIST and m.action == Marker.ADD
    ]
    assert boxes and all(len(m.points) == 28 and m.header.frame_id == sim.frame_id for m in boxes)
    assert {m.ns for arr in markers for m in arr.markers} <= {"detection_boxes", "detection_labels"}


def _bad_images(types: Any, compressed: bool) -> list[Any]:
    from perception_pkg.msgs import array_to_image, make_header

    header = make_header(types, 7, "camera_optical")
    if compressed:
        jpeg = types.CompressedImage(header=header, format="jpeg", data=array.array("B", b"\xff\xd8garbage"))
        empty = types.CompressedImage(header=header, format="jpeg", data=array.array("B"))
        png_as_depth = types.CompressedImage(
            header=header, format="16UC1; compressedDepth png", data=array.array("B", bytes(20))
        )
        return [jpeg, empty, png_as_depth]
    depth = array_to_image(np.zeros((4, 6), np.float32), "32FC1", header, types)  # no colour mapping
    short = array_to_image(np.zeros((4, 6, 3), np.uint8), "rgb8", header, types)
    short.data = array.array("B", bytes(short.data)[:30])  # truncated
    empty = types.Image(header=header, height=0, width=0, encoding="rgb8", step=0, data=array.array("B"))
    return [depth, short, empty]


@pytest.mark.parametrize("compressed", [False, True], ids=["image", "compressed"])
def test_bad_input_is_counted_and_the_node_keeps_working(ros_domain: int, compressed: bool) -> None:
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CompressedImage, Image
    from vision_msgs.msg import Detection2DArray

    from perception_pkg.msgs import MessageFactory, array_to_compressed, array_to_image, make_header

    types = MessageFactory.rclpy()
    fixed = FixedDetector(np.array([[1.0, 2, 30, 40]]), ["car"], np.full((1, 7), np.nan))
    rgb = np.full((48, 64, 3), 90, np.uint8)

    def good(stamp: int) -> Any:
        header = make_header(types, stamp, "camera_optical")
        if compressed:
            return array_to_compressed(rgb, header, types, color="rgb")
        return array_to_image(rgb, "rgb8", header, types)

    dets: list = []
    diags: list = []
    with (
        ros_node("det_test_bad") as driver,
        detection_node(driver.context, _topics(compressed), fixed) as node,
    ):
        driver.create_subscription(Detection2DArray, "/detection/detections_2d", dets.append, _reliable())
        driver.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
        pub = driver.create_publisher(
            CompressedImage if compressed else Image, _topics(compressed)["image_topic"], _reliable()
        )
        assert publish_until(driver, pub, good(1), lambda: any(_ns(m) == 1 for m in dets))
        base = node.stats.snapshot()
        for bad in _bad_images(types, compressed):
            pub.publish(bad)
            spin_until(driver, lambda: False, 0.3)  # let the worker take each one (latest-frame slot)
        assert spin_until(driver, lambda: int(_diag(diags).get("malformed", 0)) >= base.malformed + 3, 10), (
            _diag(diags)
        )
        pub.publish(good(3_000_000_000))
        assert spin_until(driver, lambda: any(_ns(m) == 3_000_000_000 for m in dets), 10)
        snap = node.stats.snapshot()
        assert snap.errors == 0 and snap.malformed == base.malformed + 3
        assert ("CompressedImage" if compressed else "Image") in snap.last_malformed and not snap.last_error
        assert len(fixed.calls) == snap.processed  # bad frames never reached the detector


SHIPPED = default_detector_card()


@pytest.mark.skipif(not SHIPPED.is_file(), reason=f"shipped detector not trained yet: {SHIPPED} absent")
def test_shipped_detector_finds_the_large_objects_of_simulator_frames(
    ros_domain: int, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from vision_msgs.msg import Detection2DArray

    from perception_pkg.msgs import detection2d_array_to_xyxy

    full = make_sim_bag(tmp_path_factory.mktemp("det_shipped"), frames=2, hw=(480, 640))
    npz = _frames_npz(full, tmp_path / "frames.npz")
    dets: list = []
    with (
        ros_node("det_test_shipped") as driver,
        child_process([str(THIS), "publish", str(npz), PREFIX]) as child,
        detection_node(driver.context, {"model_card": "", "backend": "auto", **_topics()}),
    ):
        driver.create_subscription(Detection2DArray, "/detection/detections_2d", dets.append, _reliable())
        got = lambda: {_ns(m) for m in dets} >= set(full.stamps)  # noqa: E731
        assert spin_until(driver, got, 60), output_of(child)
    checked = 0
    for stamp, (gt, gt_labels) in zip(full.stamps, full.gt2d, strict=True):
        msg = next(m for m in dets if _ns(m) == stamp)
        boxes, _, labels = detection2d_array_to_xyxy(msg)
        large = np.flatnonzero(np.minimum(gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]) >= 48)
        for g in large.tolist():
            same = [i for i, lab in enumerate(labels) if lab == gt_labels[g]]
            best = iou(gt[g : g + 1], boxes[same]).max(initial=0.0) if same else 0.0
            assert best >= 0.5, f"frame {stamp}: {gt_labels[g]} {gt[g].round(1)} best IoU {best:.2f}"
            checked += 1
    assert checked >= 2, "the test frames should show at least two large objects"


def test_missing_model_card_stops_the_node_with_a_clear_message(ros_domain: int, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        f"detection:\n  ros__parameters:\n    model_card: {tmp_path / 'absent' / 'card.yaml'}\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "perception_pkg.cli.main",
            "run",
            "--nodes",
            "detection",
            "--params-file",
            str(params),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "detection.model_card" in proc.stderr and "model card not found" in proc.stderr
    assert "Traceback" not in proc.stderr
