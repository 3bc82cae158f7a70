"""YOLO11 / YOLOv8 pose through a card: the example card models/examples/yolo11n_pose.yaml (decoder
``yolov8_pose``, Ultralytics' letterbox by default) runs a tiny export of the [1, 4 + 1 + 17 x 3, N]
layout and gives, per person, the box and the keypoints of the anchor it came from, mapped to the image
with the same letterbox inverse (Ultralytics parity in tests/test_upstream_parity.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from perception_pkg.cards import parse_card
from perception_pkg.paths import repo_root
from perception_pkg.preprocess import letterbox_transform

FIXTURES = Path(__file__).with_name("fixtures")
sys.path.insert(0, str(FIXTURES))
from make_card_conventions_golden import fixed_image  # noqa: E402

EXAMPLE = (repo_root() or Path(".")) / "models" / "examples" / "yolo11n_pose.yaml"


def test_yolo11_pose_example_card_decodes_a_tiny_export_of_its_layout() -> None:
    ort = pytest.importorskip("onnxruntime")
    from perception_pkg.engines import ModelRunner

    if not EXAMPLE.is_file():
        pytest.skip("not a source checkout")
    card = yaml.safe_load(EXAMPLE.read_text())
    card["model"] = "yolov8_pose.onnx"
    card["inputs"][0]["shape"] = [1, 3, 320, 320]
    card["outputs"][0]["shape"] = [1, 56, 2100]
    card["decoder"]["params"]["pre_nms_top_k"] = 2100
    runner = ModelRunner(parse_card(card, base_dir=FIXTURES / "upstream"), backend="onnxruntime", threads=1)
    img = fixed_image()
    dets = runner(img)
    prepared = runner.preprocess(img)
    raw = ort.InferenceSession(
        str(FIXTURES / "upstream" / "yolov8_pose.onnx"), providers=["CPUExecutionProvider"]
    )
    pred = raw.run(None, {"images": prepared.tensor})[0][0].T.astype(np.float64)  # (N, 56)
    inv = letterbox_transform(img.shape[:2], (320, 320), "center", "round", "ratio")[0].inverse()
    assert len(dets) >= 5 and dets.keypoints.shape == (len(dets), 17, 3)
    for box, kp, score in zip(dets.boxes, dets.keypoints, dets.scores, strict=True):
        row = pred[np.argmin(np.abs(pred[:, 4] - score))]  # the anchor this person came from
        np.testing.assert_allclose(kp[:, :2], inv.apply_points(row[5:].reshape(17, 3)[:, :2]), atol=1e-3)
        np.testing.assert_allclose(kp[:, 2], row[5:].reshape(17, 3)[:, 2], atol=1e-5)
        cx, cy, w, h = row[:4]
        net_box = inv.apply_boxes(np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))
        net_box[[0, 2]] = net_box[[0, 2]].clip(0, img.shape[1])
        net_box[[1, 3]] = net_box[[1, 3]].clip(0, img.shape[0])
        np.testing.assert_allclose(box, net_box, atol=1e-3)
