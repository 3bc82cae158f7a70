"""The weather node in another process (`perception run --nodes weather`): a degraded (dark) frame in, the
restored Image out with the same stamp and a matching CameraInfo; a clear frame passes through unchanged
in `auto`; bad input is counted and the node stays up. Planted models (tests/helpers/weather.py) make the
restored pixels exactly known: the negative of the input."""

from __future__ import annotations

import array
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.ros_harness import child_process, output_of, publish_until, ros_node, spin_until
from helpers.weather import planted_weather_cards

pytestmark = pytest.mark.ros

PARAMS = """
weather:
  ros__parameters:
    image_topic: /test/image
    camera_info_topic: /test/camera_info
    output_topic: /test/restored
    output_camera_info_topic: /test/restored_info
    model_card: "{card}"
    classifier_card: "{classifier}"
    backend: onnxruntime
    gate_conditions: [night]  # the planted classifier's name for a dark frame
    camera_info_wait_s: 1.0
    diagnostics_period_s: 0.2
    log_throttle_s: 0.0
    input_qos:
      reliability: reliable
      depth: 5
"""
H, W = 480, 640
RNG = np.random.default_rng(11)
DARK = RNG.integers(0, 40, (H, W, 3), dtype=np.uint8)  # mean ~0.08: the planted classifier says night
BRIGHT = RNG.integers(150, 256, (H, W, 3), dtype=np.uint8)  # clear


def _diag(msgs: list) -> dict[str, str]:
    return (
        {kv.key: kv.value for st in msgs[-1].status if st.name.endswith("weather") for kv in st.values}
        if msgs
        else {}
    )


class Driver:
    def __init__(self, node: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        from perception_pkg.msgs import MessageFactory

        self.node, self.types = node, MessageFactory.rclpy()
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = node.create_publisher(Image, "/test/image", qos)
        self.info_pub = node.create_publisher(CameraInfo, "/test/camera_info", qos)
        self.images: list = []
        self.infos: list = []
        self.diags: list = []
        node.create_subscription(Image, "/test/restored", self.images.append, 10)
        node.create_subscription(CameraInfo, "/test/restored_info", self.infos.append, 10)
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diags.append, 10)

    def send(self, img: np.ndarray, stamp: int) -> None:
        from perception_pkg.geometry3d.camera import CameraModel
        from perception_pkg.msgs import array_to_image, make_header, model_to_camera_info

        header = make_header(self.types, stamp, "camera_optical")
        K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
        cam = CameraModel(
            W, H, K, np.zeros(5), np.eye(3), np.hstack([K, np.zeros((3, 1))]), "plumb_bob", "camera_optical"
        )
        self.info_pub.publish(model_to_camera_info(cam, header, self.types))
        self.image_pub.publish(array_to_image(img, "bgr8", header, self.types))

    def wait_for(self, stamp: int, child: Any, timeout: float = 20.0) -> tuple[Any, Any]:
        from perception_pkg.msgs import stamp_to_ns

        def found() -> bool:
            return any(stamp_to_ns(m.header) == stamp for m in self.images) and any(
                stamp_to_ns(m.header) == stamp for m in self.infos
            )

        assert spin_until(self.node, found, timeout), (
            output_of(child) if child.poll() is not None else str(_diag(self.diags))
        )
        return (
            next(m for m in self.images if stamp_to_ns(m.header) == stamp),
            next(m for m in self.infos if stamp_to_ns(m.header) == stamp),
        )


def test_weather_node_restores_degraded_frames_passes_clear_ones_and_survives_bad_input(
    ros_domain: int, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from sensor_msgs.msg import Image

    from perception_pkg.msgs import camera_info_to_model, image_to_bgr, make_header

    card, classifier = planted_weather_cards(tmp_path / "model", (H, W))
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS.format(card=card, classifier=classifier))
    args = ["-m", "perception_pkg.cli.main", "run", "--nodes", "weather", "--params-file", str(params)]
    with ros_node("weather_driver") as node, child_process(args) as child:
        d = Driver(node)

        class Warm:  # one stamped pair, re-sent until its restored image comes back
            def publish(self, _msg: Any) -> None:
                d.send(DARK, 1_000_000_000)

        assert spin_until(node, lambda: d.image_pub.get_subscription_count() > 0 or child.poll() is not None)
        assert child.poll() is None, output_of(child)
        assert publish_until(node, Warm(), None, lambda: len(d.images) >= 1, timeout=40), output_of(child)

        stamp = 1_700_000_000_123_456_789
        d.send(DARK, stamp)
        img, info = d.wait_for(stamp, child)
        assert img.header.frame_id == "camera_optical" and info.header.frame_id == "camera_optical"
        np.testing.assert_array_equal(image_to_bgr(img), 255 - DARK)  # restored (the planted negative)
        cam = camera_info_to_model(info)
        assert (cam.width, cam.height) == (W, H) and cam.K[0, 0] == 500.0

        d.send(BRIGHT, stamp + 1)
        clear, _ = d.wait_for(stamp + 1, child)
        np.testing.assert_array_equal(image_to_bgr(clear), BRIGHT)  # auto: passed through unchanged

        bad = Image(height=H, width=W, encoding="bgr8", step=W * 3, data=array.array("B", bytes(100)))
        bad.header = make_header(d.types, stamp + 2, "camera_optical")
        d.image_pub.publish(bad)
        assert spin_until(node, lambda: int(_diag(d.diags).get("malformed", 0)) >= 1, 10), _diag(d.diags)

        d.send(DARK, stamp + 3)
        d.wait_for(stamp + 3, child)
        diag = _diag(d.diags)
        assert spin_until(node, lambda: int(_diag(d.diags).get("passed", 0)) >= 1, 5), _diag(d.diags)
        diag = _diag(d.diags)
        assert int(diag["restored"]) >= 2 and int(diag["errors"]) == 0 and "night=" in diag["conditions"]
        assert child.poll() is None
