"""Card-selected pose decoders (integral, mass displacement) end to end: image -> crop -> maps -> image.

A known keypoint in the image is carried through the card's own top-down crop map into heatmap cells, maps
are planted there (exact integral logits, a perfect displacement field), and ``ModelRunner`` decodes them
and maps the result back with the exact inverse: the keypoint must come back where it started. Also a
third-party SimpleBaseline-style ONNX (TinyTopDown, 256x192 -> 17x64x48) through the example card.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.pose_decoders import gaussian_maps, log_gaussian_logits
from numpy.typing import NDArray

from perception_pkg.cards.errors import CardError
from perception_pkg.cards.schema import parse_card
from perception_pkg.decoders.pose.geometry import image_to_heatmap
from perception_pkg.decoders.pose.integral import IntegralDecoder, NonIntegralHeatmapError
from perception_pkg.decoders.pose.mass_displacement import MassDisplacementDecoder
from perception_pkg.decoders.registry import build_decoder
from perception_pkg.engines.runner import ModelRunner
from perception_pkg.paths import repo_root
from perception_pkg.preprocess.pipeline import Preprocessor

K = 17
CROP_HW = (128, 96)
MAP_HW = (32, 24)


def _card(decoder: dict, outputs: list[str], crop_hw: tuple[int, int] = CROP_HW) -> dict:
    h, w = crop_hw
    # the stack's own grid convention, which these round trips compute with (the card default is upstream's)
    decoder = {**decoder, "params": {"alignment": "cell", **decoder.get("params", {})}}
    return {
        "name": "pose_test",
        "task": "pose",
        "inputs": [
            {
                "name": "input",
                "shape": ["batch", 3, h, w],
                "dynamic": {"batch": [1, 4, 16]},
                "color": "RGB",
                "scale": "1/255",
                "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225],
                "resize": {
                    "policy": "topdown",
                    "aspect_ratio": 0.75,
                    "padding": 1.25,
                    "pad_value": 0,
                    "crop": "exact",
                },
            }
        ],
        "outputs": [{"name": o, "shape": ["batch", K, h // 4, w // 4]} for o in outputs],
        "decoder": decoder,
    }


INTEGRAL = {"type": "integral", "outputs": {"logits": "integral"}}
MD = {"type": "mass_displacement", "outputs": {"c": "c", "o_x": "ox", "o_y": "oy"}, "params": {"d": 2.0}}


class PlantedEngine:
    """Stands in for an engine: returns maps computed from the crop maps the preprocessor will apply
    (runners over it are built with ``warmup=False``: there is no model to warm up)."""

    def __init__(self, outputs: Mapping[str, NDArray]) -> None:
        self.outputs = outputs

    def infer(self, inputs: Mapping[str, NDArray]) -> dict[str, NDArray]:
        n = next(iter(inputs.values())).shape[0]
        return {k: v[:n] for k, v in self.outputs.items()}


def _scene(seed: int = 0) -> tuple[NDArray, NDArray, NDArray]:
    """A 480x640 image, 3 person boxes of different sizes and aspect ratios, keypoints inside each box."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    boxes = np.array([[100.3, 50.7, 160.9, 230.2], [300.0, 200.5, 420.25, 300.0], [500.5, 10.0, 530.0, 90.0]])
    lo, hi = boxes[:, None, :2], boxes[:, None, 2:]
    kp = lo + rng.uniform(0.1, 0.9, (3, K, 2)) * (hi - lo)
    return image, boxes, kp


def _cells(card_data: dict, image: NDArray, boxes: NDArray, kp_image: NDArray) -> tuple[NDArray, tuple]:
    """Where the keypoints land on the heatmap grid of the card's crops (the truth to plant)."""
    card = parse_card(card_data)
    prepared = Preprocessor.from_card(card)(image, boxes)
    stride = card.image_input.width / card_data["outputs"][0]["shape"][-1]
    return image_to_heatmap(kp_image, stride, prepared.transform.matrix), prepared.tensor.shape


def test_integral_card_round_trip_image_crop_heatmap_image() -> None:
    image, boxes, kp = _scene()
    data = _card(INTEGRAL, ["integral"])
    u, shape = _cells(data, image, boxes, kp)
    assert shape == (3, 3, *CROP_HW)
    logits = log_gaussian_logits(u, *MAP_HW, sigma=1.0).astype(np.float32) * 1.0
    runner = ModelRunner(parse_card(data), engine=PlantedEngine({"integral": logits}), warmup=False)
    out = runner(image, boxes)
    assert out.xy.shape == (3, K, 2) and out.scores.shape == (3, K) and out.sigmas is not None
    # soft-argmax of log-Gaussian logits is exact to < 1e-3 cell away from borders; one cell is 4 crop px,
    # i.e. 4 / scale image px, so 1e-2 image px is a comfortable bound
    np.testing.assert_allclose(out.xy, kp, atol=1e-2)
    # sigma 1 cell per axis -> spread sqrt(2) cells = 4 sqrt(2) crop px -> image px by each crop's scale
    scale = Preprocessor.from_card(parse_card(data))(image, boxes).transform.scale_factors().mean(-1)
    np.testing.assert_allclose(
        out.sigmas, np.broadcast_to(4 * np.sqrt(2) / scale[:, None], (3, K)), rtol=2e-2
    )
    assert np.all(out.scores > 0.3) and np.all(out.scores <= 1)


def test_integral_card_refuses_plain_heatmaps_and_flags_on_request() -> None:
    image, boxes, kp = _scene(1)
    data = _card(INTEGRAL, ["integral"])
    u, _ = _cells(data, image, boxes, kp)
    hm = gaussian_maps(u, *MAP_HW, sigma=1.5).astype(np.float32)  # MSE-style heatmaps, amplitude 1
    with pytest.raises(NonIntegralHeatmapError):
        ModelRunner(parse_card(data), engine=PlantedEngine({"integral": hm}), warmup=False)(image, boxes)
    data["decoder"] = {**INTEGRAL, "params": {"on_invalid": "flag"}}
    out = ModelRunner(parse_card(data), engine=PlantedEngine({"integral": hm}), warmup=False)(image, boxes)
    assert np.all(out.scores == 0.0)  # decoded, but flagged: a score threshold drops them all
    # and decoding them is indeed wrong: pulled toward the crop centre by several pixels
    assert np.abs(out.xy - kp).max() > 2.0


def test_integral_card_rejects_ignore_and_bad_params() -> None:
    data = _card({**INTEGRAL, "params": {"on_invalid": "ignore"}}, ["integral"])
    with pytest.raises(CardError, match="on_invalid"):
        build_decoder(parse_card(data))
    data = _card({**INTEGRAL, "params": {"min_logit_range": -1}}, ["integral"])
    with pytest.raises(CardError, match="min_logit_range"):
        build_decoder(parse_card(data))
    assert isinstance(build_decoder(parse_card(_card(INTEGRAL, ["integral"]))), IntegralDecoder)


@pytest.mark.parametrize("voting", ["additive", "noisy_or"])
@pytest.mark.parametrize("kernel", ["bilinear", "gaussian"])
def test_mass_displacement_card_round_trip(voting: str, kernel: str) -> None:
    image, boxes, kp = _scene(2)
    data = _card({**MD, "params": {"d": 2.0, "voting": voting, "kernel": kernel}}, ["c", "ox", "oy"])
    u, _ = _cells(data, image, boxes, kp)
    y, x = np.mgrid[0 : MAP_HW[0], 0 : MAP_HW[1]].astype(np.float64)
    d = 2.0
    # perfect field in the o = (target - x) / d convention; c = a disk of radius 2 cells around the truth
    ox = (u[..., 0, None, None] - x) / d
    oy = (u[..., 1, None, None] - y) / d
    c = ((ox * d) ** 2 + (oy * d) ** 2 <= 4.0).astype(np.float32) * 0.3
    outs = {"c": c, "ox": ox.astype(np.float32), "oy": oy.astype(np.float32)}
    runner = ModelRunner(parse_card(data), engine=PlantedEngine(outs), warmup=False)
    assert isinstance(runner.decoder, MassDisplacementDecoder)
    out = runner(image, boxes)
    # all votes land on the truth; the argmax is the grid cell nearest to it: within half a cell per axis
    scale = Preprocessor.from_card(parse_card(data))(image, boxes).transform.scale_factors()  # (3, 2)
    half_cell_image_px = 0.5 * 4 / scale[:, None, :]
    assert np.all(np.abs(out.xy - kp) <= half_cell_image_px + 1e-6)
    if voting == "noisy_or":
        assert np.all((out.scores > 0) & (out.scores <= 1))


def test_mass_displacement_offset_sign_and_sigmoid() -> None:
    image, boxes, kp = _scene(3)
    base = {**MD, "params": {"d": 1.0, "offset_sign": -1, "activation": "sigmoid"}}
    data = _card(base, ["c", "ox", "oy"])
    u, _ = _cells(data, image, boxes, kp)
    y, x = np.mgrid[0 : MAP_HW[0], 0 : MAP_HW[1]].astype(np.float64)
    # a model trained with the paper's literal sign (x - target) / d, and c given as logits
    ox, oy = x - u[..., 0, None, None], y - u[..., 1, None, None]
    c_logit = np.where(ox**2 + oy**2 <= 4.0, 2.0, -8.0).astype(np.float32)
    out = ModelRunner(
        parse_card(data), engine=PlantedEngine({"c": c_logit, "ox": ox, "oy": oy}), warmup=False
    )(image, boxes)
    scale = Preprocessor.from_card(parse_card(data))(image, boxes).transform.scale_factors()
    assert np.all(np.abs(out.xy - kp) <= 0.5 * 4 / scale[:, None, :] + 1e-6)
    with pytest.raises(CardError, match="offset_sign"):
        build_decoder(parse_card(_card({**MD, "params": {"offset_sign": 2}}, ["c", "ox", "oy"])))
    with pytest.raises(CardError, match="voting"):
        build_decoder(parse_card(_card({**MD, "params": {"voting": "max"}}, ["c", "ox", "oy"])))


def test_mass_displacement_card_needs_all_three_roles() -> None:
    data = _card({"type": "mass_displacement", "outputs": {"c": "c", "o_x": "ox"}}, ["c", "ox", "oy"])
    with pytest.raises(CardError, match="o_y"):
        build_decoder(parse_card(data))


def test_stride_is_derived_per_card_and_channel_count_checked() -> None:
    data = _card(INTEGRAL, ["integral"], crop_hw=(64, 48))
    assert build_decoder(parse_card(data)).stride == 4.0
    data["keypoints"] = [f"k{i}" for i in range(5)]
    with pytest.raises(CardError, match="channels"):
        build_decoder(parse_card(data))


@pytest.mark.slow
def test_third_party_simplebaseline_onnx_runs_through_the_example_card(tmp_path: Path) -> None:
    """A SimpleBaseline-style export (256x192 -> [N, 17, 64, 48], ImageNet mean/std, "legacy" targets)
    runs through models/examples/simplebaseline_r50.yaml with no code change; a planted peak decodes to
    the right image pixel."""
    torch = pytest.importorskip("torch")
    from perception_pkg.cards.loader import load_card
    from perception_pkg.decoders.pose.geometry import heatmap_to_image
    from perception_pkg.training.export import export_onnx
    from perception_pkg.training.models import Planted, TinyTopDown

    root = repo_root()
    assert root is not None
    example = root / "models" / "examples" / "simplebaseline_r50.yaml"
    shutil.copy(example, tmp_path / "card.yaml")
    # planted peaks: person 0 keypoint k at cell (5 + 2k mod 40, 3 + k); gain 0 keeps them exact
    planted = np.zeros((1, K, 64, 48), np.float32)
    cells = np.stack([(5 + 2 * np.arange(K)) % 40, 3 + 3 * np.arange(K)], -1)  # (K, 2) as (x, y)
    planted[0, np.arange(K), cells[:, 1], cells[:, 0]] = 1.0
    planted[0, np.arange(K), cells[:, 1], cells[:, 0] + 1] = 0.5  # higher right neighbour: +0.25 x
    net = Planted(TinyTopDown(K, width=8), [torch.from_numpy(planted)], gain=0.0)
    export_onnx(net, torch.zeros(1, 3, 256, 192), tmp_path / "model.onnx", ["input"], ["heatmaps"],
                dynamic_batch=True, dynamo=False)  # fmt: skip
    card = load_card(tmp_path)  # checks shapes and names against the ONNX
    runner = ModelRunner(card, backend="onnxruntime")
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    boxes = np.array([[200.0, 100.0, 280.0, 340.0]])
    prepared = runner.preprocess(image, boxes)
    assert prepared.tensor.shape == (1, 3, 256, 192) and prepared.tensor.dtype == np.float32
    outputs = runner.infer(prepared)
    assert outputs["heatmaps"].shape == (1, K, 64, 48)
    out = runner(image, boxes)
    assert out.xy.shape == (1, K, 2)
    expect = heatmap_to_image(
        cells[None].astype(np.float64) + np.array([0.25, 0.0]),
        4.0,
        prepared.transform.matrix,
        alignment="legacy",
    )
    np.testing.assert_allclose(out.xy, expect, atol=1e-6)
    np.testing.assert_allclose(out.scores, 1.0)
    # the same card is valid YAML a user can copy: its model path is relative to the card
    assert yaml.safe_load((tmp_path / "card.yaml").read_text())["model"] == "model.onnx"
