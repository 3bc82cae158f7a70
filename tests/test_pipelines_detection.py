"""pipelines/detection.py on a bag (replay drives the same pipeline the node runs), on a small simulator
bag, with a planted model (exact boxes) and a fixed-3D stand-in (CameraInfo pairing, 3D boxes, markers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.detection import FixedDetector, SimBag, make_sim_bag, planted_for_frame
from rosbags.highlevel import AnyReader

from perception_pkg.bag import get_typestore
from perception_pkg.msgs import (
    MessageFactory,
    MessageFormatError,
    array_to_image,
    detection2d_array_to_xyxy,
    detection3d_array_to_kitti,
    make_header,
)
from perception_pkg.pipelines import PIPELINES, private_topic
from perception_pkg.pipelines.detection import DetectionPipeline, DetectionSettings, create
from perception_pkg.replay import replay_bag
from perception_pkg.replay.routing import RoutedPipeline
from perception_pkg.runtime.settings import ConfigError

IMAGE = "sensor_msgs/msg/Image"
INFO = "sensor_msgs/msg/CameraInfo"


class TOPICS:
    detections_2d = "/detection/detections_2d"
    detections_3d = "/detection/detections_3d"
    markers = "/detection/markers"
    annotated = "/detection/annotated"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimBag:
    return make_sim_bag(tmp_path_factory.mktemp("det_sim"))


def _read(bag: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    with AnyReader([bag], default_typestore=get_typestore()) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype)))
    return out


def test_replay_writes_detections_of_a_planted_model_exactly(sim: SimBag, tmp_path: Path) -> None:
    planted = planted_for_frame(tmp_path / "model", sim)
    params = tmp_path / "params.yaml"
    params.write_text(
        "detection:\n  ros__parameters:\n"
        f"    model_card: {planted.card}\n    backend: onnxruntime\n"
        "    threads: 1\n    score_threshold: 0.3\n"
    )
    res = replay_bag(sim.path, tmp_path / "out", ["detection"], params_file=params, progress=False)
    assert res.summary["pipelines"]["detection"]["messages"] == len(sim.stamps) * 2  # images + infos
    assert res.summary["pipelines"]["detection"]["skipped_malformed"] == 0
    topics = _read(res.output_bag)
    dets = topics["/detection/detections_2d"]
    assert [t for t, _ in dets] == sim.stamps
    assert "/detection/detections_3d" not in topics  # a 2D-only card writes no 3D topics
    for t, msg in dets:
        assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == t
        assert msg.header.frame_id == sim.frame_id
    boxes, scores, labels = detection2d_array_to_xyxy(dets[0][1])
    # planted outputs pass preprocessing, ONNX Runtime, decoding and the inverse letterbox exactly
    assert labels == planted.labels
    assert np.abs(boxes - planted.boxes).max() < 0.01
    np.testing.assert_allclose(scores, planted.scores, atol=1e-6)


def _messages(sim: SimBag, with_info: bool = True) -> list[tuple[str, object, int]]:
    out = []
    with AnyReader([sim.path], default_typestore=get_typestore()) as reader:
        for conn, t, raw in reader.messages():
            if conn.topic == "/camera/image_raw" or (with_info and conn.topic == "/camera/camera_info"):
                out.append((conn.topic, reader.deserialize(raw, conn.msgtype), t))
    return out


def _fixed_pipeline(sim: SimBag, annotated: bool = False) -> tuple[RoutedPipeline, FixedDetector]:
    boxes3d, labels = sim.gt3d[0]
    boxes2d = np.tile([10.0, 20.0, 60.0, 90.0], (len(labels), 1))
    det = FixedDetector(boxes2d, labels, boxes3d)
    settings = DetectionSettings(replay_annotated=annotated)
    pipe = RoutedPipeline(DetectionPipeline(settings, MessageFactory.rosbags(), det))
    pipe.bind([("/camera/image_raw", IMAGE), ("/camera/camera_info", INFO)])
    return pipe, det


def test_each_image_is_lifted_with_its_own_camera_info_into_3d_boxes_and_markers(sim: SimBag) -> None:
    pipe, det = _fixed_pipeline(sim, annotated=True)
    assert pipe.wants("/camera/image_raw", "sensor_msgs/msg/Image")
    assert pipe.wants("/camera/camera_info", "sensor_msgs/msg/CameraInfo")
    assert not pipe.wants("/camera/image_raw", "sensor_msgs/msg/CompressedImage")
    assert [t for t, _ in pipe.outputs_for("/camera/image_raw")] == [
        TOPICS.detections_2d, TOPICS.detections_3d, TOPICS.markers, TOPICS.annotated
    ]  # fmt: skip
    outputs: list[tuple[str, object]] = []
    for topic, msg, t in _messages(sim):
        outputs += pipe.on_message(topic, msg, t)
    outputs += pipe.finish()
    # in the sim bag each CameraInfo follows its image: every image waits for its own, the first too
    assert det.calls == [True] * len(sim.stamps)
    assert pipe.pipeline.frames_without_camera == 0 and pipe.pipeline.camera_info_late == 0
    by_topic: dict[str, list] = {}
    for topic, msg in outputs:
        by_topic.setdefault(topic, []).append(msg)
    assert [len(by_topic[t]) for t in (TOPICS.detections_2d, TOPICS.detections_3d, TOPICS.markers)] == [
        2,
        2,
        2,
    ]
    first, second = by_topic[TOPICS.detections_3d]
    np.testing.assert_allclose(detection3d_array_to_kitti(first)[0], sim.gt3d[0][0], atol=1e-9)
    kitti, _, labels, ids = detection3d_array_to_kitti(second)
    np.testing.assert_allclose(kitti, sim.gt3d[0][0], atol=1e-9)
    assert labels == sim.gt3d[0][1] and ids == [str(i) for i in range(len(labels))]
    assert second.header.frame_id == sim.frame_id
    assert second.header.stamp.sec * 10**9 + second.header.stamp.nanosec == sim.stamps[1]
    markers = by_topic[TOPICS.markers][1].markers
    assert sum(m.type == m.LINE_LIST for m in markers) == len(labels)
    annotated = by_topic[TOPICS.annotated][1]
    assert (annotated.encoding, annotated.height, annotated.width) == ("bgr8", *sim.images[0].shape[:2])


@pytest.mark.parametrize("info_first", [True, False])
def test_a_one_frame_recording_gets_3d_whichever_of_image_and_camera_info_comes_first(
    sim: SimBag, info_first: bool
) -> None:
    pipe, det = _fixed_pipeline(sim)
    image, info = [m for m in _messages(sim) if m[2] == sim.stamps[0]]
    outputs = []
    for topic, msg, t in [info, image] if info_first else [image, info]:
        outputs += pipe.on_message(topic, msg, t)
    outputs += pipe.finish()
    assert det.calls == [True] and pipe.pipeline.frames_without_camera == 0
    dets3d = [m for topic, m in outputs if topic == TOPICS.detections_3d]
    assert len(dets3d) == 1 and len(dets3d[0].detections) == len(sim.gt3d[0][1]) > 0
    assert dict(pipe.counters())["camera_info_late"] == "0"


def test_an_image_whose_camera_info_never_comes_runs_after_the_wait_with_the_newest_one(sim: SimBag) -> None:
    pipe, det = _fixed_pipeline(sim)
    (img0, info0), (img1, _) = [[m for m in _messages(sim) if m[2] == t] for t in sim.stamps[:2]]
    assert pipe.on_message(*img0) == [] and len(pipe.on_message(*info0)) == 3
    assert pipe.on_message(*img1) == []  # waits for its own CameraInfo ...
    wait_ns = int(DetectionSettings().camera_info_wait_s * 1e9)
    late = pipe.pipeline.poll((img1[2] + wait_ns) * 1e-9)  # ... until the wait is over (bag time)
    assert len(late) == 1 and pipe.pipeline.camera_info_late == 1
    assert det.calls == [True]  # and then it runs with the newest CameraInfo
    pipe.pipeline.run(late[0])
    assert det.calls == [True, True] and pipe.pipeline.frames_without_camera == 0


def test_a_bag_without_camera_info_is_processed_frame_by_frame_without_3d(sim: SimBag) -> None:
    pipe, det = _fixed_pipeline(sim)
    pipe.bind([("/camera/image_raw", IMAGE)])  # the recording has no CameraInfo topic
    n_out = [len(pipe.on_message(topic, msg, t)) for topic, msg, t in _messages(sim, with_info=False)]
    assert n_out == [3] * len(sim.stamps)  # nothing held back, nothing lost at the end
    assert det.calls == [False] * len(sim.stamps) and pipe.finish() == []


def test_malformed_images_raise_message_format_error_for_the_runner_to_count(sim: SimBag) -> None:
    pipe, _ = _fixed_pipeline(sim)
    types = MessageFactory.rosbags()
    depth = array_to_image(np.zeros((4, 6), np.float32), "32FC1", make_header(types, 5, "cam"), types)
    with pytest.raises(MessageFormatError, match="encoding"):
        pipe.on_message("/camera/image_raw", depth, 5)
    short = array_to_image(np.zeros((4, 6, 3), np.uint8), "rgb8", make_header(types, 6, "cam"), types)
    short.data = short.data[:10]
    with pytest.raises(MessageFormatError):
        pipe.on_message("/camera/image_raw", short, 6)


def test_factory_registration_topics_and_clear_card_errors(tmp_path: Path) -> None:
    assert PIPELINES["detection"].create is create
    assert PIPELINES["detection"].settings is DetectionSettings
    assert private_topic("~/detections_2d", "detection") == "/detection/detections_2d"
    assert private_topic("/abs/topic", "detection") == "/abs/topic"
    types = MessageFactory.rosbags()
    with pytest.raises(ConfigError, match=r"detection\.model_card.*not found.*nope\.yaml"):
        create(DetectionSettings(model_card=str(tmp_path / "nope.yaml")), types, live=False)
    bad = tmp_path / "card.yaml"
    bad.write_text("name: x\ntask: pose\n")
    with pytest.raises(ConfigError, match=r"cannot load detector from .*card\.yaml"):
        create(DetectionSettings(model_card=str(bad)), types, live=False)
