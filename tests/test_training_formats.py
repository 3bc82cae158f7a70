"""Each supported output format, end to end through a card alone: a torch network exported in exactly that
layout, outputs planted with known boxes/keypoints, run by ModelRunner on ONNX Runtime, results compared in
camera pixels (< 0.01 px after the inverse preprocessing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from perception_pkg.cards import load_card  # noqa: E402
from perception_pkg.decoders.detection.yolox import yolox_grid  # noqa: E402
from perception_pkg.engines import ModelRunner  # noqa: E402
from perception_pkg.preprocess import letterbox_transform, topdown_transform  # noqa: E402
from perception_pkg.training.formats import (  # noqa: E402
    centernet_card,
    topdown_card,
    write_model,
    yolov8_card,
    yolov8_pose_card,
    yolox_card,
)
from perception_pkg.training.models import (  # noqa: E402
    Planted,
    TinyCenterNet,
    TinyTopDown,
    TinyYolov8,
    TinyYolox,
)

SRC_HW = (480, 640)
NET_HW = (256, 320)
CLASSES = ["car", "person", "bike"]
# known boxes in camera pixels, one per class, overlapping so NMS being class-aware matters
BOXES = np.array([[100.0, 120.0, 260.0, 300.0], [120.25, 130.5, 250.75, 310.0], [400.0, 50.0, 620.5, 470.0]])
SCORES = np.array([0.9, 0.8, 0.7])
RNG = np.random.default_rng(7)
IMAGE = RNG.integers(0, 256, (*SRC_HW, 3), dtype=np.uint8)


def _runner(module: Any, card: dict[str, Any], directory: Path, dynamic_batch: bool = False) -> ModelRunner:
    path = write_model(module, card, directory, dynamic_batch=dynamic_batch)
    return ModelRunner(load_card(path), backend="onnxruntime", threads=1)


def _net_boxes(anchor: str) -> np.ndarray:
    t, _, _ = letterbox_transform(SRC_HW, NET_HW, anchor)
    return t.apply_boxes(BOXES)


def _check(dets: Any, order: np.ndarray | None = None) -> None:
    order = np.arange(len(BOXES)) if order is None else order
    assert len(dets) == len(BOXES)
    assert np.abs(dets.boxes - BOXES[order]).max() < 0.01
    np.testing.assert_allclose(dets.scores, SCORES[order], atol=1e-6)


def test_yolox_raw_output_through_card(tmp_path: Path) -> None:
    grid, stride = yolox_grid(NET_HW, (8, 16, 32))
    net = _net_boxes("top_left")
    raw = np.zeros((1, len(grid), 5 + len(CLASSES)), dtype=np.float32)
    anchors = np.array([100, 1400, 1650])  # one on each stride level (1280 + 320 + 80 anchors)
    s = stride[anchors, None]
    raw[0, anchors, :2] = (net[:, :2] + net[:, 2:]) / 2 / s - grid[anchors]
    raw[0, anchors, 2:4] = np.log((net[:, 2:] - net[:, :2]) / s)
    raw[0, anchors, 4] = 1.0
    raw[0, anchors, 5 + np.arange(3)] = SCORES
    module = Planted(TinyYolox(num_classes=3), [torch.from_numpy(raw)])
    runner = _runner(module, yolox_card("yolox", NET_HW, CLASSES), tmp_path)
    dets = runner(IMAGE)
    _check(dets)
    assert dets.class_ids.tolist() == [0, 1, 2]


@pytest.mark.parametrize("pose", [False, True], ids=["detect", "pose"])
def test_yolov8_output_through_card(tmp_path: Path, pose: bool) -> None:
    k = 17 if pose else 0
    nc = 1 if pose else 3
    n = sum((NET_HW[0] // s) * (NET_HW[1] // s) for s in (8, 16, 32))
    t, _, _ = letterbox_transform(SRC_HW, NET_HW, "center")
    net = t.apply_boxes(BOXES)
    out = np.zeros((1, 4 + nc + 3 * k, n), dtype=np.float32)
    anchors = np.array([10, 700, 1650])
    out[0, :2, anchors] = (net[:, :2] + net[:, 2:]) / 2
    out[0, 2:4, anchors] = net[:, 2:] - net[:, :2]
    out[0, 4 + (np.zeros(3, int) if pose else np.arange(3)), anchors] = SCORES
    kp_cam = RNG.uniform(0, 480, (3, k, 2))
    if pose:
        kp_net = t.apply_points(kp_cam)
        for j in range(k):
            out[0, 5 + 3 * j, anchors] = kp_net[:, j, 0]
            out[0, 5 + 3 * j + 1, anchors] = kp_net[:, j, 1]
            out[0, 5 + 3 * j + 2, anchors] = 0.5
    module = Planted(TinyYolov8(num_classes=nc, num_keypoints=k), [torch.from_numpy(out)])
    card = yolov8_pose_card("pose", NET_HW) if pose else yolov8_card("det", NET_HW, CLASSES)
    if pose:  # one class: the overlapping boxes would suppress each other; keep them all
        card["decoder"]["params"]["nms_iou"] = 0.95
    dets = _runner(module, card, tmp_path)(IMAGE)
    _check(dets)
    if pose:
        assert np.abs(dets.keypoints[..., :2] - kp_cam).max() < 0.01
        np.testing.assert_allclose(dets.keypoints[..., 2], 0.5)


@pytest.mark.parametrize("dynamic", [False, True], ids=["batch1", "dynamic-batch"])
def test_topdown_heatmaps_through_card(tmp_path: Path, dynamic: bool) -> None:
    k, h, w = 17, 64, 48
    cells = np.stack([RNG.integers(1, w - 1, k), RNG.integers(1, h - 1, k)], axis=-1)
    hm = np.full((1, k, h, w), -4.0, dtype=np.float32)
    hm[0, np.arange(k), cells[:, 1], cells[:, 0]] = 2.0
    hm[0, np.arange(k), cells[:, 1], cells[:, 0] + 1] = 1.0  # higher right neighbour: quarter shift +x
    module = Planted(TinyTopDown(num_keypoints=k), [torch.from_numpy(hm)])
    card = topdown_card("td", batch="batch" if dynamic else 1)
    runner = _runner(module, card, tmp_path, dynamic_batch=dynamic)
    people = BOXES[[0, 2]]
    kps = runner(IMAGE, people)
    assert kps.xy.shape == (2, k, 2)
    net_xy = (cells + [0.25, 0.0] + 0.5) * 4.0  # quarter shift, cell centre, stride 4
    expected = topdown_transform(people, (256, 192)).inverse().apply_points(np.stack([net_xy, net_xy]))
    assert np.abs(kps.xy - expected).max() < 0.01
    np.testing.assert_allclose(kps.scores, 2.0, atol=1e-6)  # raw heatmaps: score = peak value


def test_centernet_heads_through_card(tmp_path: Path) -> None:
    h, w = NET_HW[0] // 4, NET_HW[1] // 4
    t, _, _ = letterbox_transform(SRC_HW, NET_HW, "center")
    net = t.apply_boxes(BOXES)
    centre = (net[:, :2] + net[:, 2:]) / 2 / 4
    cell = np.floor(centre).astype(int)
    hm = np.full((1, 3, h, w), -9.0, dtype=np.float32)
    wh = np.zeros((1, 2, h, w), dtype=np.float32)
    reg = np.zeros((1, 2, h, w), dtype=np.float32)
    for c in range(3):
        x, y = cell[c]
        hm[0, c, y, x] = np.log(SCORES[c] / (1 - SCORES[c]))
        wh[0, :, y, x] = (net[c, 2:] - net[c, :2]) / 4
        reg[0, :, y, x] = centre[c] - cell[c]
    module = Planted(
        TinyCenterNet(num_classes=3, width=8, head_width=8), [torch.from_numpy(a) for a in (hm, wh, reg)]
    )
    dets = _runner(module, centernet_card("cn", NET_HW, CLASSES), tmp_path)(IMAGE)
    _check(dets)
    assert dets.class_ids.tolist() == [0, 1, 2]
