"""Decoders on synthetic outputs with known answers: boxes to 1e-6 px in the network frame and 0.01 px in
the camera frame after the inverse preprocessing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from perception_pkg.cards import CardError, parse_card
from perception_pkg.decoders import build_decoder
from perception_pkg.decoders.detection.centernet import max_pool3x3
from perception_pkg.decoders.detection.yolox import yolox_grid
from perception_pkg.decoders.pose.geometry import heatmap_to_crop
from perception_pkg.decoders.pose.heatmap_argmax import argmax_decode
from perception_pkg.preprocess import letterbox_transform, topdown_transform

NET_HW = (256, 320)
SRC_HW = (480, 640)
fast = settings(max_examples=30, deadline=None)


def _card(
    decoder: dict[str, Any], outputs: list[dict[str, Any]], hw: tuple[int, int] = NET_HW, **extra: Any
) -> Any:
    return parse_card(
        {
            "name": "synthetic",
            "inputs": [{"name": "images", "shape": [1, 3, *hw], "resize": {"policy": "letterbox"}}],
            "outputs": outputs,
            "decoder": decoder,
            **extra,
        }
    )


def _known_boxes(draw: Any, n_max: int = 6) -> np.ndarray:
    """Boxes inside the source image, in source pixels."""
    n = draw(st.integers(1, n_max))
    out = []
    for _ in range(n):
        w = draw(st.floats(8, 300))
        h = draw(st.floats(8, 300))
        x0 = draw(st.floats(0, SRC_HW[1] - w))
        y0 = draw(st.floats(0, SRC_HW[0] - h))
        out.append([x0, y0, x0 + w, y0 + h])
    return np.array(out)


boxes_strategy = st.composite(lambda draw: _known_boxes(draw))()


def _roundtrip(decoded: Any, net_boxes: np.ndarray, src_boxes: np.ndarray, order: np.ndarray) -> None:
    t, _, _ = letterbox_transform(SRC_HW, NET_HW)
    np.testing.assert_allclose(decoded.boxes, net_boxes[order], atol=1e-6)
    back = decoded.transformed(t.inverse()).boxes
    assert np.abs(back - src_boxes[order]).max() < 0.01


@fast
@given(src_boxes=boxes_strategy, seed=st.integers(0, 1000))
def test_yolox_decodes_known_boxes(src_boxes: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_cls = 4
    grid, stride = yolox_grid(NET_HW, (8, 16, 32))
    t, _, _ = letterbox_transform(SRC_HW, NET_HW)
    net = t.apply_boxes(src_boxes)
    raw = np.zeros((1, len(grid), 5 + n_cls))
    anchors = rng.choice(len(grid), size=len(net), replace=False)
    scores = np.linspace(0.9, 0.5, len(net))
    cls = rng.integers(0, n_cls, len(net))
    s = stride[anchors, None]
    centre = (net[:, :2] + net[:, 2:]) / 2
    raw[0, anchors, :2] = centre / s - grid[anchors]
    raw[0, anchors, 2:4] = np.log((net[:, 2:] - net[:, :2]) / s)
    raw[0, anchors, 4] = 1.0
    raw[0, anchors, 5 + cls] = scores
    card = _card(
        {"type": "yolox", "params": {"nms_iou": 1.0, "score_threshold": 0.3}},
        [{"name": "output", "shape": [1, len(grid), 5 + n_cls]}],
        classes=[f"c{i}" for i in range(n_cls)],
    )
    (det,) = build_decoder(card)({"output": raw})
    np.testing.assert_allclose(det.scores, scores, atol=1e-12)
    assert det.class_ids.tolist() == cls.tolist()
    _roundtrip(det, net, src_boxes, np.arange(len(net)))


def test_yolox_score_is_objectness_times_class_and_sigmoid_option() -> None:
    grid, _ = yolox_grid((64, 64), (8, 16, 32))
    raw = np.zeros((1, len(grid), 6))
    raw[0, 3, 4], raw[0, 3, 5] = 0.5, 0.8
    raw[0, 7, 4], raw[0, 7, 5] = 0.9, 0.3  # 0.27: below the 0.3 threshold
    card = _card(
        {"type": "yolox", "params": {"score_threshold": 0.3}},
        [{"name": "output", "shape": [1, len(grid), 6]}],
        hw=(64, 64),
    )
    (det,) = build_decoder(card)({"output": raw})
    assert det.scores.tolist() == pytest.approx([0.4])
    logits = np.full_like(raw, -30.0)
    logits[0, 3, 4:6] = 0.0  # sigmoid(0) * sigmoid(0) = 0.25
    card = _card(
        {"type": "yolox", "params": {"score_threshold": 0.2, "scores_activated": False}},
        [{"name": "output", "shape": [1, len(grid), 6]}],
        hw=(64, 64),
    )
    (det,) = build_decoder(card)({"output": logits})
    assert det.scores.tolist() == pytest.approx([0.25])


def test_yolox_card_with_wrong_strides_is_rejected() -> None:
    card = _card({"type": "yolox"}, [{"name": "output", "shape": [1, 1000, 85]}])
    with pytest.raises(CardError, match="give 1680 anchors, but the output has 1000"):
        build_decoder(card)


@fast
@given(src_boxes=boxes_strategy, seed=st.integers(0, 1000), pose=st.booleans())
def test_yolov8_and_pose_decode_known_boxes_and_keypoints(
    src_boxes: np.ndarray, seed: int, pose: bool
) -> None:
    rng = np.random.default_rng(seed)
    k = 5 if pose else 0
    n_cls = 1 if pose else 3
    n = sum((NET_HW[0] // s) * (NET_HW[1] // s) for s in (8, 16, 32))
    t, _, _ = letterbox_transform(SRC_HW, NET_HW)
    net = t.apply_boxes(src_boxes)
    out = np.zeros((1, 4 + n_cls + 3 * k, n))
    anchors = rng.choice(n, size=len(net), replace=False)
    scores = np.linspace(0.95, 0.4, len(net))
    cls = rng.integers(0, n_cls, len(net))
    out[0, :2, anchors] = (net[:, :2] + net[:, 2:]) / 2
    out[0, 2:4, anchors] = net[:, 2:] - net[:, :2]
    out[0, 4 + cls, anchors] = scores
    kp_src = rng.uniform(0, 400, (len(net), k, 2))
    kp_net = t.apply_points(kp_src)
    vis = rng.uniform(0, 1, (len(net), k))
    for j in range(k):
        out[0, 4 + n_cls + 3 * j, anchors] = kp_net[:, j, 0]
        out[0, 4 + n_cls + 3 * j + 1, anchors] = kp_net[:, j, 1]
        out[0, 4 + n_cls + 3 * j + 2, anchors] = vis[:, j]
    if pose:
        card = _card(
            {"type": "yolov8_pose", "params": {"nms_iou": 1.0}},
            [{"name": "output0", "shape": [1, 4 + 1 + 3 * k, n]}],
            keypoints=[f"k{i}" for i in range(k)],
        )
    else:
        card = _card(
            {"type": "yolov8", "params": {"nms_iou": 1.0}}, [{"name": "output0", "shape": [1, 7, n]}]
        )
    (det,) = build_decoder(card)({"output0": out})
    np.testing.assert_allclose(det.scores, scores, atol=1e-12)
    assert det.class_ids.tolist() == cls.tolist()
    _roundtrip(det, net, src_boxes, np.arange(len(net)))
    if pose:
        np.testing.assert_allclose(det.keypoints[..., :2], kp_net, atol=1e-6)
        np.testing.assert_allclose(det.keypoints[..., 2], vis, atol=1e-12)
        back = det.transformed(t.inverse()).keypoints[..., :2]
        assert np.abs(back - kp_src).max() < 0.01
    else:
        assert det.keypoints is None


def test_yolov8_nms_removes_duplicate_of_same_class_only() -> None:
    n = 3
    out = np.zeros((1, 6, n))
    out[0, :4] = np.array([[50, 50, 20, 20], [51, 50, 20, 20], [51, 50, 20, 20]]).T
    out[0, 4, 0], out[0, 4, 1], out[0, 5, 2] = 0.9, 0.8, 0.7
    card = _card({"type": "yolov8"}, [{"name": "output0", "shape": [1, 6, n]}], hw=(32, 32))
    (det,) = build_decoder(card)({"output0": out})
    assert det.class_ids.tolist() == [0, 1]
    assert det.scores.tolist() == pytest.approx([0.9, 0.7])


@fast
@given(
    centres=st.lists(
        st.tuples(st.integers(1, 46), st.integers(1, 62), st.integers(0, 2)),
        min_size=1,
        max_size=8,
        unique_by=lambda c: (c[0] // 3, c[1] // 3),
    ),
    seed=st.integers(0, 1000),
)
def test_centernet_decodes_known_boxes(centres: list[tuple[int, int, int]], seed: int) -> None:
    # peaks in neighbouring cells cannot both survive a 3x3 max-pool (by design, CenterNet's NMS)
    cells = np.array([c[:2] for c in centres])
    gaps = np.abs(cells[:, None] - cells[None]).max(axis=-1) + 2 * np.eye(len(cells), dtype=int)
    assume(bool((gaps >= 2).all()))
    rng = np.random.default_rng(seed)
    h, w = 48, 64
    net_hw = (h * 4, w * 4)
    heat = np.full((1, 3, h, w), -8.0)
    size = np.zeros((1, 2, h, w))
    off = np.zeros((1, 2, h, w))
    n = len(centres)
    probs = np.linspace(0.9, 0.5, n)
    expected = []
    for (y, x, c), p in zip(centres, probs, strict=True):
        heat[0, c, y, x] = np.log(p / (1 - p))
        wh = rng.uniform(2, 30, 2)
        d = rng.uniform(0, 1, 2)
        size[0, :, y, x], off[0, :, y, x] = wh, d
        ctr = (np.array([x, y]) + d) * 4
        expected.append(np.concatenate([ctr - wh * 2, ctr + wh * 2]))
    card = _card(
        {
            "type": "centernet",
            "outputs": {"heatmap": "hm", "size": "wh", "offset": "reg"},
            "params": {"score_threshold": 0.3},
        },
        [
            {"name": "hm", "shape": [1, 3, h, w]},
            {"name": "wh", "shape": [1, 2, h, w]},
            {"name": "reg", "shape": [1, 2, h, w]},
        ],
        hw=net_hw,
    )
    (det,) = build_decoder(card)({"hm": heat, "wh": size, "reg": off})
    np.testing.assert_allclose(det.scores, probs, atol=1e-9)
    np.testing.assert_allclose(det.boxes, np.array(expected), atol=1e-6)
    assert det.class_ids.tolist() == [c for _, _, c in centres]


def test_centernet_peak_suppression_topk_and_size_units() -> None:
    heat = np.full((1, 1, 8, 8), -10.0)
    heat[0, 0, 3, 3] = 2.0
    heat[0, 0, 3, 4] = 1.0  # neighbour of a stronger peak: not a peak
    heat[0, 0, 6, 6] = 0.5
    heat[0, 0, 0, 7] = 0.0
    size = np.ones((1, 2, 8, 8)) * 8.0
    outputs = [{"name": "hm", "shape": [1, 1, 8, 8]}, {"name": "wh", "shape": [1, 2, 8, 8]}]
    roles = {"heatmap": "hm", "size": "wh"}
    card = _card(
        {"type": "centernet", "outputs": roles, "params": {"top_k": 2, "size_unit": "input"}},
        outputs,
        hw=(32, 32),
    )
    (det,) = build_decoder(card)({"hm": heat, "wh": size})
    assert len(det) == 2
    np.testing.assert_allclose(det.boxes, [[8, 8, 16, 16], [20, 20, 28, 28]])  # no offset head: cell corner
    card = _card(
        {"type": "centernet", "outputs": roles, "params": {"score_threshold": 0.45}}, outputs, hw=(32, 32)
    )
    (det,) = build_decoder(card)({"hm": heat, "wh": size})
    assert len(det) == 3  # sigmoid(0) = 0.5 >= 0.45
    np.testing.assert_allclose(det.boxes[0], [12 - 16, 12 - 16, 12 + 16, 12 + 16])  # 8 cells x stride 4


def test_max_pool3x3_matches_naive_window_max() -> None:
    x = np.random.default_rng(3).normal(size=(3, 7, 9)).astype(np.float32)
    naive = np.empty_like(x)
    for c in range(3):
        for i in range(7):
            for j in range(9):
                naive[c, i, j] = x[c, max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2].max()
    np.testing.assert_array_equal(max_pool3x3(x), naive)


@fast
@given(mu=st.tuples(st.floats(2.0, 44.0), st.floats(2.0, 60.0)), sigma=st.floats(1.0, 3.0))
def test_heatmap_argmax_error_bounded_by_quarter_shift(mu: tuple[float, float], sigma: float) -> None:
    h, w = 48, 64
    ys, xs = np.mgrid[0:h, 0:w]
    hm = np.exp(-((xs - mu[1]) ** 2 + (ys - mu[0]) ** 2) / (2 * sigma**2))[None, None]
    cells, peak = argmax_decode(hm, "none")
    assert np.abs(cells[0, 0] - [mu[1], mu[0]]).max() <= 0.5 + 1e-9
    refined, _ = argmax_decode(hm, "quarter")
    # the quarter step goes toward the true peak, so it never adds error beyond 0.5 cell
    assert np.abs(refined[0, 0] - [mu[1], mu[0]]).max() <= 0.5 + 1e-9
    assert peak[0, 0] == pytest.approx(hm.max())


def test_heatmap_alignment_conventions() -> None:
    u = np.array([0.0, 10.0])
    np.testing.assert_allclose(heatmap_to_crop(u, 4, "cell"), [2.0, 42.0])
    np.testing.assert_allclose(heatmap_to_crop(u, 4, "legacy"), [0.5, 40.5])


@fast
@given(
    boxes=st.lists(
        st.tuples(st.floats(0, 400), st.floats(0, 300), st.floats(20, 200), st.floats(20, 200)),
        min_size=1,
        max_size=4,
    ),
    seed=st.integers(0, 1000),
)
def test_heatmap_decoder_maps_cells_back_to_camera_frame(boxes: list[tuple[float, ...]], seed: int) -> None:
    rng = np.random.default_rng(seed)
    k, h, w = 5, 64, 48
    card = parse_card(
        {
            "name": "pose",
            "keypoints": [f"k{i}" for i in range(k)],
            "inputs": [
                {
                    "name": "images",
                    "shape": [1, 3, 256, 192],
                    "resize": {"policy": "topdown", "crop": "exact"},
                }
            ],
            "outputs": [{"name": "heatmaps", "shape": [1, k, h, w]}],
            "decoder": {
                "type": "heatmap_argmax",
                "params": {"refine": "none", "activation": "sigmoid", "alignment": "cell"},
            },
        }
    )
    b = np.array([[x, y, x + bw, y + bh] for x, y, bw, bh in boxes])
    t = topdown_transform(b, (256, 192))
    cells = np.stack([rng.integers(0, w, (len(b), k)), rng.integers(0, h, (len(b), k))], axis=-1)
    hm = np.full((len(b), k, h, w), -5.0)
    n_idx, k_idx = np.meshgrid(np.arange(len(b)), np.arange(k), indexing="ij")
    hm[n_idx, k_idx, cells[..., 1], cells[..., 0]] = 3.0
    kps = build_decoder(card)({"heatmaps": hm})
    np.testing.assert_allclose(kps.xy, (cells + 0.5) * 4.0, atol=1e-9)  # cell centres, stride derived as 4
    np.testing.assert_allclose(kps.scores, 1 / (1 + np.exp(-3.0)))
    camera = kps.transformed(t.inverse())
    expected = t.inverse().apply_points((cells + 0.5) * 4.0)
    assert np.abs(camera.xy - expected).max() < 0.01
    assert np.abs(t.apply_points(camera.xy) - kps.xy).max() < 0.01


def test_heatmap_card_with_wrong_keypoint_count_is_rejected() -> None:
    card = _card(
        {"type": "heatmap_argmax"}, [{"name": "hm", "shape": [1, 17, 64, 80]}], keypoints=["a", "b", "c"]
    )
    with pytest.raises(CardError, match="keypoints: 3 keypoint names but the heatmap output has 17"):
        build_decoder(card)


def test_image_decoder_inverts_forkgan_style_output() -> None:
    card = _card(
        {"type": "image", "params": {"scale": 0.00392156862745098, "mean": 0.5, "std": 0.5}},
        [{"name": "fake", "shape": [1, 3, 4, 5]}],
        hw=(4, 5),
    )
    y = np.linspace(-1, 1, 60).reshape(1, 3, 4, 5).astype(np.float32)  # tanh range
    img = build_decoder(card)({"fake": y})
    assert img.shape == (1, 4, 5, 3) and img.dtype == np.uint8
    rgb = np.clip(np.rint((y[0] + 1) / 2 * 255), 0, 255).transpose(1, 2, 0)
    np.testing.assert_array_equal(img[0], rgb[..., ::-1])
