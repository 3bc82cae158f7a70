"""SimCC (RTMPose) outputs through a card: ``decoder.type: simcc``, 1-D x and y classification vectors per
keypoint with a split ratio. The example card (models/examples/rtmpose_s.yaml) runs a tiny export of the
layout (its mmpose parity is in tests/test_upstream_parity.py); planted bins decode to known crop and
image positions; wrong cards name the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from perception_pkg.cards import CardError, parse_card
from perception_pkg.decoders import build_decoder
from perception_pkg.decoders.pose.simcc import simcc_decode
from perception_pkg.paths import repo_root
from perception_pkg.preprocess import topdown_transform

UPSTREAM = Path(__file__).with_name("fixtures") / "upstream"
EXAMPLE = (repo_root() or Path(".")) / "models" / "examples" / "rtmpose_s.yaml"


def _example() -> dict[str, Any]:
    if not EXAMPLE.is_file():
        pytest.skip("not a source checkout")
    card = yaml.safe_load(EXAMPLE.read_text())
    card["model"] = "rtmpose.onnx"
    card["inputs"][0]["name"] = "images"
    return card


def test_rtmpose_example_card_runs_the_tiny_export_and_maps_bins_to_the_image() -> None:
    """The runner's keypoints are the argmax bins / 2 in the crop's pixel-centre frame, taken through the
    inverse of the crop map (computed here from the raw outputs, independently of the decoder)."""
    ort = pytest.importorskip("onnxruntime")
    from perception_pkg.engines import ModelRunner

    runner = ModelRunner(parse_card(_example(), base_dir=UPSTREAM), backend="onnxruntime", threads=1)
    img = np.random.default_rng(3).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    boxes = np.array([[50.0, 40.0, 120.0, 260.0], [200.5, 10.0, 390.0, 290.0]])
    prepared = runner.preprocess(img, boxes)
    sess = ort.InferenceSession(str(UPSTREAM / "rtmpose.onnx"), providers=["CPUExecutionProvider"])
    sx, sy = sess.run(None, {"images": prepared.tensor})
    crop_xy = np.stack([sx.argmax(-1), sy.argmax(-1)], axis=-1) / 2.0 + 0.5  # pixel centre -> continuous
    expected = topdown_transform(boxes, (256, 192), None, 1.25, "cv2").inverse().apply_points(crop_xy)
    kps = runner(img, boxes)
    assert kps.xy.shape == (2, 17, 2)
    np.testing.assert_allclose(kps.xy, expected, atol=1e-6)
    np.testing.assert_allclose(kps.scores, np.minimum(sx.max(-1), sy.max(-1)), atol=1e-6)


def _card(**params: Any) -> dict[str, Any]:
    return {
        "name": "simcc",
        "task": "pose",
        "inputs": [{"name": "images", "shape": [1, 3, 64, 48], "resize": {"policy": "topdown"}}],
        "outputs": [{"name": "x", "shape": [1, 2, 96]}, {"name": "y", "shape": [1, 2, 128]}],
        "decoder": {"type": "simcc", "outputs": {"simcc_x": "x", "simcc_y": "y"}, "params": params},
        "keypoints": ["a", "b"],
    }


@pytest.mark.parametrize(("alignment", "offset"), [("legacy", 0.5), ("cell", 0.25)])
def test_planted_bins_decode_at_bin_over_split_ratio(alignment: str, offset: float) -> None:
    x = np.zeros((1, 2, 96), np.float32)
    y = np.zeros((1, 2, 128), np.float32)
    x[0, 0, 31], x[0, 1, 0] = 0.9, 0.4
    y[0, 0, 100], y[0, 1, 127] = 0.6, 0.8
    kps = build_decoder(parse_card(_card(alignment=alignment)))({"x": x, "y": y})
    # legacy: bin i at crop pixel centre i / 2 (= i / 2 + 0.5 continuous); cell: centre of [i/2, (i+1)/2)
    np.testing.assert_allclose(kps.xy[0], [[15.5 + offset, 50 + offset], [0 + offset, 63.5 + offset]])
    np.testing.assert_allclose(kps.scores[0], [0.6, 0.4])  # the smaller of the two maxima


def test_simcc_decode_is_vectorised_over_people_and_keypoints() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 17, 96)), rng.normal(size=(5, 17, 128))
    bins, scores = simcc_decode(x, y)
    np.testing.assert_array_equal(bins[..., 0], x.argmax(-1))
    np.testing.assert_array_equal(bins[..., 1], y.argmax(-1))
    np.testing.assert_allclose(scores, np.minimum(x.max(-1), y.max(-1)))


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"params": {"split_ratio": 3.0}}, "decoder.params.split_ratio", "96 bins"),
        ({"params": {"alignment": "centre"}}, "decoder.params.alignment", "legacy"),
        ({"outputs": {"simcc_x": "x"}}, "decoder.outputs.simcc_y", "needs output role"),
        ({"keypoints": ["a", "b", "c"]}, "keypoints", "3 keypoint names"),
    ],
)
def test_a_wrong_simcc_card_names_the_field(change: dict[str, Any], field: str, words: str) -> None:
    card = copy.deepcopy(_card())
    if "keypoints" in change:
        card["keypoints"] = change["keypoints"]
    else:
        card["decoder"].update(change)
    with pytest.raises(CardError) as info:
        build_decoder(parse_card(card))
    assert info.value.field == field
    assert words in str(info.value)
