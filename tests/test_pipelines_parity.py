"""Node and replay run the same pipeline: per capability, the same bag of valid and malformed messages goes
to the live node in another process (`perception run`, published message by message from the bag's own
CDR) and to `perception replay`; both must publish the same outputs (compared after one rosbags
serialisation) and count the same frames as processed and as malformed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.ros_harness import child_process, output_of, ros_node, spin_until

from perception_pkg.bag import BagWriter, get_typestore, open_bag
from perception_pkg.completion import resolve_card as completion_card
from perception_pkg.detection import default_detector_card
from perception_pkg.msgs import MessageFactory, array_to_image, make_header, stamp_to_ns, xyz_to_pointcloud
from perception_pkg.pose import default_pose_card
from perception_pkg.replay import replay_bag

pytestmark = pytest.mark.ros

CLOUD = "sensor_msgs/msg/PointCloud2"
IMAGE = "sensor_msgs/msg/Image"
COMMON = """    diagnostics_period_s: 0.1
    log_throttle_s: 0.0
    input_qos: {reliability: reliable, depth: 50}
"""


@dataclass
class Case:
    node: str
    params: str  # this node's ros__parameters lines
    main_topic: str  # the input whose messages become frames
    outputs: list[str]  # topics compared
    valid: int  # frames that must come out
    malformed: int  # frames (or partner messages) that must be counted as malformed
    messages: list[tuple[str, str, int, Any]] = field(default_factory=list)  # (topic, type, stamp, msg)
    partner: str | None = None  # an input paired with the main one by header stamp


def _write(path: Path, messages: list[tuple[str, str, int, Any]]) -> Path:
    with BagWriter(path) as w:
        for topic, msgtype, _, _ in messages:
            w.add_connection(topic, msgtype)
        for topic, _, stamp, msg in messages:
            w.write(topic, stamp, msg)
    return path


def _normalised(topic_type: str, raw: bytes) -> bytes:
    """rclpy's and rosbags' CDR may differ in trailing padding: compare after one rosbags round trip."""
    store = get_typestore()
    return bytes(store.serialize_cdr(store.deserialize_cdr(raw, topic_type), topic_type))


def _replay(bag: Path, case: Case, params: Path, out: Path) -> tuple[dict[str, list[bytes]], dict[str, Any]]:
    res = replay_bag(bag, out, [case.node], params_file=params, copy_inputs=False, progress=False)
    got: dict[str, list[bytes]] = {}
    with open_bag(res.output_bag) as reader:
        for m in reader.messages():
            got.setdefault(m.topic, []).append(_normalised(m.msgtype, bytes(m.raw)))
    return got, res.summary["pipelines"][case.node]


def _live(bag: Path, case: Case, params: Path) -> tuple[dict[str, list[bytes]], dict[str, str]]:
    """Publish the bag's messages in order to the node in a child process; after each main-input
    message wait until the node has accounted for it (processed or malformed), so none is dropped."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.serialization import deserialize_message, serialize_message

    types = MessageFactory.rclpy()
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    got: dict[str, list[bytes]] = {}
    diags: list[dict[str, str]] = []

    def diag_of(msg: Any) -> None:
        for st in msg.status:
            if st.name.endswith(case.node):
                diags.append({kv.key: kv.value for kv in st.values})

    def accounted() -> int:
        return int(diags[-1]["processed"]) + int(diags[-1]["malformed"]) if diags else -1

    with open_bag(bag) as reader:
        stored = [(m.topic, m.msgtype, bytes(m.raw), stamp_to_ns(msg.header)) for m, msg in reader.decoded()]
    args = ["-m", "perception_pkg.cli.main", "run", "--nodes", case.node, "--params-file", str(params)]
    with ros_node("parity_driver") as node, child_process(args) as child:
        pubs = {t: node.create_publisher(types.cls(mt), t, qos) for t, mt, _, _ in stored}
        for topic in case.outputs:
            msgtype = next(mt for t, mt in _output_types(case) if t == topic)

            def keep(msg: Any, topic: str = topic, msgtype: str = msgtype) -> None:
                got.setdefault(topic, []).append(_normalised(msgtype, serialize_message(msg)))

            node.create_subscription(types.cls(msgtype), topic, keep, qos)
        node.create_subscription(DiagnosticArray, "/diagnostics", diag_of, 10)
        main = pubs[case.main_topic]
        assert spin_until(node, lambda: main.get_subscription_count() > 0 and bool(diags), 30), output_of(
            child
        )
        sent: dict[str, set[int]] = {case.main_topic: set(), case.partner or "": set()}
        for topic, msgtype, raw, stamp in stored:
            pubs[topic].publish(deserialize_message(raw, types.cls(msgtype)))
            sent.setdefault(topic, set()).add(stamp)
            complete = sent[case.main_topic] & sent[case.partner] if case.partner else sent[case.main_topic]
            if topic not in (case.main_topic, case.partner):  # calibration: let it land before the frame
                spin_until(node, lambda: False, 0.05)
            n_complete = len(complete)
            assert spin_until(node, lambda: accounted() >= n_complete, 30), (  # noqa: B023
                diags[-1],
                output_of(child),
            )
        expected = {t: case.valid for t in case.outputs}
        spin_until(node, lambda: {t: len(got.get(t, [])) for t in case.outputs} == expected, 10)
        assert child.poll() is None, output_of(child)
        return got, diags[-1]


def _output_types(case: Case) -> list[tuple[str, str]]:
    kinds = {
        "/t/filtered": CLOUD,
        "/detection/detections_2d": "vision_msgs/msg/Detection2DArray",
        "/detection/detections_3d": "vision_msgs/msg/Detection3DArray",
        "/detection/markers": "visualization_msgs/msg/MarkerArray",
        "/t/people": "perception_msgs/msg/PersonArray",
        "/t/skeletons": "visualization_msgs/msg/MarkerArray",
        "/t/completed": CLOUD,
        "/t/restored": IMAGE,
        "/t/restored_info": "sensor_msgs/msg/CameraInfo",
    }
    return [(t, kinds[t]) for t in case.outputs]


def _check(tmp_path: Path, case: Case) -> dict[str, list[bytes]]:
    bag = _write(tmp_path / "in", case.messages)
    params = tmp_path / "params.yaml"
    params.write_text(f"{case.node}:\n  ros__parameters:\n{case.params}{COMMON}")
    replayed, summary = _replay(bag, case, params, tmp_path / "replay")
    live, diag = _live(bag, case, params)
    for topic in case.outputs:
        assert len(replayed.get(topic, [])) == case.valid, (topic, len(replayed.get(topic, [])))
        assert len(live.get(topic, [])) == case.valid, (topic, len(live.get(topic, [])), diag)
        assert live[topic] == replayed[topic], f"{topic}: the node and replay published different messages"
    # the same counts: frames processed, malformed input skipped, nothing dropped on the live side
    assert int(diag["processed"]) == case.valid and int(diag["dropped"]) == 0, diag
    assert int(diag["malformed"]) == case.malformed == summary["skipped_malformed"], (diag, summary)
    assert int(diag["errors"]) == 0, diag
    return replayed


def test_cloud_filter_node_and_replay_agree_on_valid_and_malformed_clouds(
    ros_domain: int, tmp_path: Path
) -> None:
    types = MessageFactory.rosbags()
    rng = np.random.default_rng(3)
    msgs = []
    for i in range(5):
        t = 1_000_000_000 + i * 100_000_000
        xyz = rng.uniform(-30, 30, (200, 3)).astype(np.float32)
        xyz[::17] = np.nan
        cloud = xyz_to_pointcloud(
            xyz, make_header(types, t, "lidar"), types, intensity=rng.random(200, np.float32)
        )
        if i == 1:  # no z field: malformed in both (replay used to abort here)
            cloud.fields = [f for f in cloud.fields if f.name != "z"]
        if i == 3:  # claims 200 points, carries 20
            cloud.data = cloud.data[: 20 * cloud.point_step]
        msgs.append(("/t/points", CLOUD, t, cloud))
    params = "    input_topic: /t/points\n    output_topic: /t/filtered\n"
    params += "    range_max: 40.0\n    voxel_size: 2.0\n"
    _check(tmp_path, Case("cloud_filter", params, "/t/points", ["/t/filtered"], 3, 2, msgs))


def _sim_messages(tmp_path: Path, topics: tuple[str, ...]) -> list[tuple[str, str, int, Any]]:
    from helpers.detection import make_sim_bag

    sim = make_sim_bag(tmp_path / "sim", frames=3)
    with open_bag(sim.path) as reader:
        msgs = [(m.topic, m.msgtype, m.stamp, msg) for m, msg in reader.decoded(topics)]
    # a frame's CameraInfo first, so the live node (newest CameraInfo) and replay lift with the same one
    return sorted(msgs, key=lambda m: (m[2], m[1] != "sensor_msgs/msg/CameraInfo"))


def _bad_images(types: MessageFactory, t0: int) -> list[tuple[str, str, int, Any]]:
    depth = array_to_image(np.zeros((24, 32), np.float32), "32FC1", make_header(types, t0, "cam"), types)
    short = array_to_image(np.zeros((24, 32, 3), np.uint8), "rgb8", make_header(types, t0 + 1, "cam"), types)
    short.data = short.data[:100]
    return [("/camera/image_raw", IMAGE, t0, depth), ("/camera/image_raw", IMAGE, t0 + 1, short)]


@pytest.mark.skipif(not default_detector_card().is_file(), reason="shipped detector absent")
def test_detection_node_and_replay_agree_on_frames_camera_info_and_bad_images(
    ros_domain: int, tmp_path: Path
) -> None:
    msgs = _sim_messages(tmp_path, ("/camera/image_raw", "/camera/camera_info"))
    msgs += _bad_images(MessageFactory.rosbags(), msgs[-1][2] + 50_000_000)
    params = "    backend: onnxruntime\n    threads: 1\n"
    outputs = ["/detection/detections_2d", "/detection/detections_3d", "/detection/markers"]
    _check(tmp_path, Case("detection", params, "/camera/image_raw", outputs, 3, 2, msgs))


@pytest.mark.skipif(not default_pose_card().is_file(), reason="shipped pose model absent")
def test_pose_node_and_replay_agree_on_paired_frames_and_bad_images(ros_domain: int, tmp_path: Path) -> None:
    msgs = _sim_messages(tmp_path, ("/camera/image_raw", "/ground_truth/detections_2d"))
    types = MessageFactory.rosbags()
    bad = _bad_images(types, msgs[-1][2] + 50_000_000)
    # each bad image gets its detections, so both sides pair it and then fail to decode it
    dets = next(m for _, mt, _, m in msgs if mt == "vision_msgs/msg/Detection2DArray")
    for _, _, t, img in bad:
        d = type(dets)(header=img.header, detections=list(dets.detections))
        msgs += [
            ("/camera/image_raw", IMAGE, t, img),
            ("/ground_truth/detections_2d", dets.__msgtype__, t, d),
        ]
    params = (
        "    backend: onnxruntime\n    detections_topic: /ground_truth/detections_2d\n"
        "    output_topic: /t/people\n    markers_topic: /t/skeletons\n    match_max_wait_s: 10.0\n"
    )
    case = Case("pose", params, "/camera/image_raw", ["/t/people", "/t/skeletons"], 3, 2, msgs)
    case.partner = "/ground_truth/detections_2d"
    _check(tmp_path, case)


@pytest.mark.skipif(not completion_card(None).is_file(), reason="shipped completion model absent")
def test_completion_node_and_replay_agree_on_scans_boxes_and_bad_clouds(
    ros_domain: int, tmp_path: Path
) -> None:
    boxes_topic = "/ground_truth/detections_3d_lidar"  # in the scan's frame: no transform needed
    msgs = _sim_messages(tmp_path, ("/lidar/points", boxes_topic))
    types = MessageFactory.rosbags()
    boxes = next(m for topic, _, _, m in msgs if topic == boxes_topic)
    t0 = msgs[-1][2] + 50_000_000
    for i, kind in enumerate(("no_z", "truncated")):
        xyz = np.random.default_rng(i).uniform(-20, 20, (100, 3)).astype(np.float32)
        cloud = xyz_to_pointcloud(xyz, make_header(types, t0 + i, "lidar"), types)
        if kind == "no_z":
            cloud.fields = [f for f in cloud.fields if f.name != "z"]
        else:
            cloud.data = cloud.data[: 10 * cloud.point_step]
        paired = type(boxes)(header=cloud.header, detections=list(boxes.detections))
        msgs += [("/lidar/points", CLOUD, t0 + i, cloud), (boxes_topic, boxes.__msgtype__, t0 + i, paired)]
    params = (
        f"    backend: onnxruntime\n    threads: 1\n    boxes_topic: {boxes_topic}\n"
        "    output_topic: /t/completed\n    match_max_wait_s: 10.0\n"
    )
    case = Case("completion", params, "/lidar/points", ["/t/completed"], 3, 2, msgs)
    case.partner = boxes_topic
    replayed = _check(tmp_path, case)
    store = get_typestore()
    widths = [store.deserialize_cdr(raw, CLOUD).width for raw in replayed["/t/completed"]]
    assert max(widths) >= 2048, widths  # cars were completed, not only empty clouds compared


def test_weather_node_and_replay_agree_on_restored_frames_camera_info_and_bad_images(
    ros_domain: int, tmp_path: Path
) -> None:
    from perception_pkg.weather.restorer import DEFAULT_MODEL, resolve_card

    if not resolve_card(None, DEFAULT_MODEL).is_file():
        pytest.skip("shipped weather model absent")
    msgs = _sim_messages(tmp_path, ("/camera/image_raw", "/camera/camera_info"))
    msgs += _bad_images(MessageFactory.rosbags(), msgs[-1][2] + 50_000_000)
    params = (
        "    backend: onnxruntime\n    threads: 1\n    mode: always\n"
        "    output_topic: /t/restored\n    output_camera_info_topic: /t/restored_info\n"
    )
    outputs = ["/t/restored", "/t/restored_info"]
    _check(tmp_path, Case("weather", params, "/camera/image_raw", outputs, 3, 2, msgs))
