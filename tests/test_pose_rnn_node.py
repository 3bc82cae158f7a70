"""The pose node in another process (`perception run --nodes pose`) with the shipped recurrent bottom-up
card: images only (no detections topic is needed), one PersonArray per image with the image's stamp,
and the same people the estimator finds on that image in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.ros_harness import child_process, output_of, publish_until, ros_node, spin_until

from perception_pkg.paths import models_dir

CARD = models_dir() / "sim_pose_rnn" / "card.yaml"
pytestmark = [
    pytest.mark.ros,
    pytest.mark.skipif(not CARD.is_file(), reason=f"shipped model not present: {CARD}"),
]

PARAMS = """
pose:
  ros__parameters:
    image_topic: /test/image
    output_topic: /test/people
    markers_topic: /test/markers
    annotated_topic: /test/annotated
    pose_card: "{card}"
    backend: onnxruntime
    input_qos:
      reliability: reliable
      depth: 5
"""


def _image(types: Any, img: np.ndarray, stamp_ns: int) -> Any:
    from perception_pkg.msgs import array_to_image, make_header

    return array_to_image(img, "bgr8", make_header(types, stamp_ns, "camera_optical"), types)


def test_pose_node_runs_the_bottom_up_rnn_card_on_images_alone(ros_domain: int, tmp_path: Path) -> None:
    from perception_msgs.msg import PersonArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosbags.highlevel import AnyReader
    from sensor_msgs.msg import Image

    from perception_pkg.bag import get_typestore
    from perception_pkg.msgs import MessageFactory, image_to_bgr, person_array_to_arrays, stamp_to_ns
    from perception_pkg.pose import PoseEstimator
    from perception_pkg.sim.generate import ensure_sample_bag

    images = []
    with AnyReader([ensure_sample_bag()], default_typestore=get_typestore()) as reader:
        conns = [c for c in reader.connections if c.topic == "/camera/image_raw"]
        for c, _, raw in reader.messages(conns):
            images.append(np.ascontiguousarray(image_to_bgr(reader.deserialize(raw, c.msgtype))))
    est = PoseEstimator.from_card(CARD, backend="onnxruntime", max_people=20)
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS.format(card=CARD))
    cmd = ["-m", "perception_pkg.cli.main", "run", "--nodes", "pose", "--params-file", str(params)]
    with ros_node("pose_rnn_driver") as node, child_process(cmd) as child:
        types = MessageFactory.rclpy()
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        pub = node.create_publisher(Image, "/test/image", qos)
        people: list = []
        node.create_subscription(PersonArray, "/test/people", people.append, 10)
        ready = spin_until(node, lambda: pub.get_subscription_count() > 0 or child.poll() is not None)
        assert ready and child.poll() is None, output_of(child)
        warm = _image(types, images[0], 1_000_000_000)
        assert publish_until(node, pub, warm, lambda: len(people) >= 1, timeout=30), output_of(child)
        for k, img in enumerate(images[:3]):
            stamp = 2_000_000_000 + k * 100_000_000
            pub.publish(_image(types, img, stamp))

            def arrived(s: int = stamp) -> bool:
                return any(stamp_to_ns(p.header) == s for p in people)

            assert spin_until(node, arrived, 30.0), output_of(child)
            got = person_array_to_arrays(next(p for p in people if stamp_to_ns(p.header) == stamp))
            want = est(img)
            assert len(got) == len(want)
            if len(want):
                np.testing.assert_allclose(got.keypoints, want.keypoints, atol=1e-3)
