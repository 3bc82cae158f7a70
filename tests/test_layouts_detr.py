"""DETR-style detectors (RT-DETR) through a card: ``decoder.type: detr``, no NMS, normalised cxcywh boxes
and class scores. The example card (models/examples/rtdetr_r18.yaml), pointed at a tiny export of the
same layout, against Ultralytics' RTDETRPredictor and RT-DETR's own RTDETRPostProcessor written out in
numpy; plus the decoder's arithmetic on planted queries and its card errors."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from perception_pkg.cards import CardError, parse_card
from perception_pkg.decoders import build_decoder
from perception_pkg.paths import repo_root

FIXTURES = Path(__file__).with_name("fixtures")
UPSTREAM = FIXTURES / "upstream"
sys.path.insert(0, str(FIXTURES))
from make_card_conventions_golden import fixed_image  # noqa: E402

EXAMPLE = (repo_root() or Path(".")) / "models" / "examples" / "rtdetr_r18.yaml"
NET = (320, 320)


def _example(**decoder: Any) -> dict[str, Any]:
    """The shipped example card, pointed at the tiny 320x320, 50-query, 3-class export."""
    if not EXAMPLE.is_file():
        pytest.skip("not a source checkout")
    card = yaml.safe_load(EXAMPLE.read_text())
    card["model"] = "rtdetr.onnx"
    card["inputs"][0]["shape"] = [1, 3, *NET]
    card["outputs"] = [{"name": "output0", "shape": [1, 50, 7]}]
    card["classes"] = ["a", "b", "c"]
    card["decoder"]["params"].update(decoder)
    return card


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _session(name: str) -> Any:
    ort = pytest.importorskip("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(UPSTREAM / name), sess_options=opts, providers=["CPUExecutionProvider"])


def _input(img: np.ndarray) -> np.ndarray:
    """Ultralytics RT-DETR preprocessing: LetterBox(scaleFill=True) = a plain resize, RGB / 255."""
    x = cv2.resize(img, (NET[1], NET[0]), interpolation=cv2.INTER_LINEAR)[..., ::-1]
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32) / 255


def _xyxy(b: np.ndarray) -> np.ndarray:
    return np.concatenate([b[..., :2] - b[..., 2:4] / 2, b[..., :2] + b[..., 2:4] / 2], axis=-1)


def test_rtdetr_example_card_matches_ultralytics_rtdetr_predictor() -> None:
    """``RTDETRPredictor.postprocess``: best class per query, score > conf, boxes x original size (its
    order is the query order; the stack's is by score, so the reference is sorted)."""
    from perception_pkg.engines import ModelRunner

    img = fixed_image()
    runner = ModelRunner(parse_card(_example(), base_dir=UPSTREAM), backend="onnxruntime", threads=1)
    ours = runner(img)
    pred = _session("rtdetr.onnx").run(None, {"images": _input(img)})[0][0].astype(np.float64)
    score, cls = pred[:, 4:].max(-1), pred[:, 4:].argmax(-1)
    keep = np.flatnonzero(score > 0.25)
    keep = keep[np.argsort(-score[keep], kind="stable")]
    h, w = img.shape[:2]
    boxes = _xyxy(pred[keep, :4]) * [w, h, w, h]
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)  # the stack clips to the image, as Ultralytics' plots do
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    assert len(keep) >= 5 and len(ours) == len(keep)
    np.testing.assert_array_equal(ours.class_ids, cls[keep])
    np.testing.assert_allclose(ours.scores, score[keep], atol=1e-5)
    assert np.abs(ours.boxes - boxes).max() < 1e-3  # pixels


def test_rtdetr_raw_heads_match_rtdetr_postprocessor_topk() -> None:
    """RT-DETR's ``RTDETRPostProcessor`` (focal loss): sigmoid, top-k over all (query, class) pairs,
    label = index % C, query = index // C, boxes x image size; then the demo's score threshold."""
    img = fixed_image()
    logits, boxes = _session("rtdetr_logits.onnx").run(None, {"images": _input(img)})
    card = _example(activation="sigmoid", selection="topk", max_detections=100, score_threshold=0.4)
    card["model"] = "rtdetr_logits.onnx"
    card["outputs"] = [
        {"name": "pred_logits", "shape": [1, 50, 3]},
        {"name": "pred_boxes", "shape": [1, 50, 4]},
    ]
    card["decoder"]["outputs"] = {"logits": "pred_logits", "boxes": "pred_boxes"}
    decoder = build_decoder(parse_card(card, base_dir=UPSTREAM))
    ours = decoder({"pred_logits": logits, "pred_boxes": boxes})[0]
    scores = _sigmoid(logits[0].astype(np.float64)).reshape(-1)
    top = np.argsort(-scores, kind="stable")[:100]
    top = top[scores[top] > 0.4]
    ref_boxes = _xyxy(boxes[0].astype(np.float64))[top // 3] * [*NET[::-1], *NET[::-1]]
    assert len(top) >= 5 and len(ours) == len(top)
    assert len(set((top // 3).tolist())) < len(top)  # some query gives two classes: not per-query
    np.testing.assert_array_equal(ours.class_ids, top % 3)
    np.testing.assert_allclose(ours.scores, scores[top], atol=1e-9)
    np.testing.assert_allclose(ours.boxes, ref_boxes, atol=1e-6)


def _planted_card(**params: Any) -> dict[str, Any]:
    return {
        "name": "detr",
        "inputs": [{"name": "images", "shape": [1, 3, 100, 200], "resize": {"policy": "stretch"}}],
        "outputs": [{"name": "out", "shape": [1, 4, 6]}],
        "decoder": {"type": "detr", "params": params},
        "classes": ["a", "b"],
    }


def test_planted_queries_decode_to_their_boxes_in_input_pixels() -> None:
    out = np.zeros((1, 4, 6), np.float32)
    out[0, :, :4] = [[0.5, 0.5, 0.2, 0.4], [0.25, 0.1, 0.1, 0.1], [0.9, 0.9, 0.1, 0.1], [0.5, 0.5, 1, 1]]
    out[0, :, 4:] = [[0.9, 0.1], [0.2, 0.7], [0.1, 0.2], [0.05, 0.3]]
    dets = build_decoder(parse_card(_planted_card(activation="none")))({"out": out})[0]
    np.testing.assert_allclose(dets.boxes, [[80, 30, 120, 70], [40, 5, 60, 15], [0, 0, 200, 100]], atol=1e-5)
    np.testing.assert_allclose(dets.scores, [0.9, 0.7, 0.3], atol=1e-6)
    assert dets.class_ids.tolist() == [0, 1, 1]


def test_softmax_drops_the_no_object_class() -> None:
    card = _planted_card(activation="softmax")
    card["outputs"][0]["shape"] = [1, 2, 7]
    out = np.zeros((1, 2, 7), np.float32)
    out[0, :, :4] = 0.5
    out[0, 0, 4:] = [5.0, 0.0, 0.0]  # class a
    out[0, 1, 4:] = [0.0, 0.0, 5.0]  # no object
    dets = build_decoder(parse_card(card))({"out": out})[0]
    assert dets.class_ids.tolist() == [0]
    assert dets.scores[0] == pytest.approx(np.exp(5) / (np.exp(5) + 2), rel=1e-6)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"outputs": [{"name": "out", "shape": [1, 4, 9]}]}, "classes", "4 + 2 = 6"),
        ({"decoder": {"type": "detr", "outputs": {"boxes": "out"}}}, "decoder.outputs", "both 'boxes'"),
        ({"decoder": {"type": "detr", "params": {"selection": "nms"}}}, "decoder.params.selection", "topk"),
        (
            {"decoder": {"type": "detr", "params": {"box_format": "xywh"}}},
            "decoder.params.box_format",
            "cxcywh",
        ),
    ],
)
def test_a_wrong_detr_card_names_the_field(change: dict[str, Any], field: str, words: str) -> None:
    card = copy.deepcopy(_planted_card())
    card.update(change)
    with pytest.raises(CardError) as info:
        build_decoder(parse_card(card))
    assert info.value.field == field
    assert words in str(info.value)
