"""Model cards: parsing, defaults, a CardError naming the field for each mistake, ONNX cross-check."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import onnx
import pytest
import yaml
from onnx import TensorProto, helper

from perception_pkg.cards import CardError, load_card, parse_card


def _card() -> dict[str, Any]:
    return {
        "name": "det",
        "task": "detection",
        "inputs": [
            {
                "name": "images",
                "shape": [1, 3, 64, 96],
                "layout": "NCHW",
                "color": "RGB",
                "scale": "1/255",
                "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225],
                "resize": {"policy": "letterbox", "pad_value": 114, "anchor": "center"},
            }
        ],
        "outputs": [{"name": "hm", "shape": [1, 2, 16, 24]}, {"name": "wh", "shape": [1, 2, 16, 24]}],
        "decoder": {"type": "centernet", "outputs": {"heatmap": "hm", "size": "wh"}, "params": {"top_k": 5}},
        "classes": ["car", "person"],
        "precision": {
            "preferred": "fp16",
            "supported": ["fp32", "fp16", "int8"],
            "calibration": {"images": 64},
        },
        "provenance": {"training": "synthetic", "data": "none", "accuracy": {"AP": 0.0}, "license": "MIT"},
    }


def _write_onnx(path: Path, inputs: dict[str, list[Any]], outputs: dict[str, list[Any]]) -> None:
    """A graph whose outputs are ReduceMax-free constants-of-shape: enough for I/O cross-checks."""
    nodes, vi_in, vi_out = [], [], []
    first = next(iter(inputs))
    for name, shape in inputs.items():
        vi_in.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    for name, shape in outputs.items():
        shape_name = f"{name}_shape"
        nodes.append(
            helper.make_node(
                "Constant",
                [],
                [shape_name],
                value=helper.make_tensor(
                    shape_name,
                    TensorProto.INT64,
                    [len(shape)],
                    [d if isinstance(d, int) else 1 for d in shape],
                ),
            )
        )
        nodes.append(helper.make_node("ConstantOfShape", [shape_name], [f"{name}_c"]))
        # keep the input in the graph so it is not pruned
        nodes.append(helper.make_node("ReduceMean", [first], [f"{name}_m"], keepdims=0))
        nodes.append(helper.make_node("Add", [f"{name}_c", f"{name}_m"], [name]))
        vi_out.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    graph = helper.make_graph(nodes, "g", vi_in, vi_out)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


def test_valid_card_parses_with_values_and_defaults() -> None:
    card = parse_card(_card(), base_dir="/models/det")
    spec = card.image_input
    assert card.model_path == Path("/models/det/model.onnx")
    assert (spec.height, spec.width, spec.channels) == (64, 96, 3)
    assert spec.scale == pytest.approx(1 / 255)
    assert spec.resize.policy == "letterbox" and spec.resize.anchor == "center"
    assert spec.resize.interpolation == "linear"
    assert card.decoder.outputs == {"heatmap": "hm", "size": "wh"}
    assert card.precision.supported == ("fp32", "fp16", "int8")
    assert card.precision.calibration_images == 64
    assert card.provenance.accuracy == {"AP": 0.0}
    assert card.classes == ("car", "person")


def test_choices_are_case_insensitive_and_canonicalised() -> None:
    d = _card()
    d["inputs"][0]["layout"] = "nchw"
    d["inputs"][0]["color"] = "rgb"
    spec = parse_card(d).image_input
    assert (spec.layout, spec.color) == ("NCHW", "RGB")


def test_dynamic_batch_needs_and_uses_a_range() -> None:
    d = _card()
    d["inputs"][0]["shape"] = ["batch", 3, 64, 96]
    d["inputs"][0]["dynamic"] = {"batch": [1, 2, 8]}
    spec = parse_card(d).image_input
    assert spec.concrete_shape("min") == (1, 3, 64, 96)
    assert spec.concrete_shape("max") == (8, 3, 64, 96)
    assert spec.dynamic_dims == (0,)


def _mutate(path: str, value: Any) -> dict[str, Any]:
    """Set (or with value ... delete) a field given as 'a.b[0].c'."""
    d = copy.deepcopy(_card())
    keys: list[Any] = []
    for part in path.split("."):
        while "[" in part:
            name, _, rest = part.partition("[")
            if name:
                keys.append(name)
            idx, _, part = rest.partition("]")
            keys.append(int(idx))
        if part:
            keys.append(part)
    target = d
    for k in keys[:-1]:
        target = target[k]
    if value is ...:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return d


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        ("name", ..., "name", "required"),
        ("inputs[0].layout", "CHW", "inputs[0].layout", "NCHW, NHWC"),
        ("inputs[0].color", "YUV", "inputs[0].color", "RGB"),
        ("inputs[0].std", [0.2, 0.0, 0.2], "inputs[0].std", "0"),
        ("inputs[0].mean", [0.1, 0.2], "inputs[0].mean", "1 or 3"),
        ("inputs[0].shape", [1, 64, 96, 3], "inputs[0].shape", "channels"),
        ("inputs[0].shape", [1, 3, -1, 96], "inputs[0].shape[2]", "> 0"),
        ("inputs[0].shape", [1, 3, "h", 96], "inputs[0].dynamic", "'h'"),
        ("inputs[0].resize.anchor", "middle", "inputs[0].resize.anchor", "center"),
        ("inputs[0].resize.padding", 0.5, "inputs[0].resize.padding", ">= 1"),
        ("inputs[0].resize.pad_vlaue", 0, "inputs[0].resize.pad_vlaue", "unknown field"),
        ("inputs[0].scale", "1/0", "inputs[0].scale", "finite number"),
        ("outputs[1].name", "hm", "outputs[1].name", "duplicate"),
        ("decoder.outputs.heatmap", "nope", "decoder.outputs.heatmap", "not one of the card's outputs"),
        ("precision.preferred", "int4", "precision.preferred", "fp32"),
        ("precision.supported", ["fp32", "bf8"], "precision.supported[1]", "fp16"),
        ("classes", ["car", "car"], "classes", "duplicate"),
        ("provenance.accuracy", 0.5, "provenance.accuracy", "mapping"),
        ("torch", {"factory": ""}, "torch.factory", "non-empty string"),
        ("sha256", "abc123", "sha256", "64 hex digits"),
        ("extra_field", 1, "extra_field", "unknown field"),
    ],
)
def test_wrong_card_raises_card_error_naming_the_field(path: str, value: Any, field: str, words: str) -> None:
    with pytest.raises(CardError) as info:
        parse_card(_mutate(path, value), source="models/det/card.yaml")
    assert info.value.field == field
    assert words in str(info.value)
    assert str(info.value).startswith("models/det/card.yaml: ")


@pytest.mark.parametrize(
    ("decoder", "field", "words"),
    [
        ({"type": "nonsense"}, "decoder.type", "unknown decoder"),
        ({"type": "centernet", "outputs": {"heatmap": "hm"}}, "decoder.outputs.size", "needs output role"),
        (
            {"type": "centernet", "outputs": {"heatmap": "hm", "size": "wh"}, "params": {"topk": 3}},
            "decoder.params.topk",
            "unknown parameter",
        ),
        (
            {"type": "centernet", "outputs": {"heatmap": "hm", "size": "wh"}, "params": {"stride": 8}},
            "decoder.params.stride",
            "does not cover",
        ),
        (
            {"type": "centernet", "outputs": {"heatmap": "hm", "size": "wh", "mask": "wh"}},
            "decoder.outputs.mask",
            "no role",
        ),
        (
            {
                "type": "centernet",
                "outputs": {"heatmap": "hm", "size": "wh"},
                "params": {"score_threshold": 2},
            },
            "decoder.params.score_threshold",
            "in [0.0, 1.0]",
        ),
    ],
)
def test_decoder_mistakes_name_the_decoder_field(
    tmp_path: Path, decoder: dict[str, Any], field: str, words: str
) -> None:
    d = _card()
    d["decoder"] = decoder
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(d))
    with pytest.raises(CardError) as info:
        load_card(tmp_path, check_onnx=False)
    assert info.value.field == field
    assert words in str(info.value)


def test_load_card_cross_checks_onnx_io(tmp_path: Path) -> None:
    d = _card()
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(d))
    _write_onnx(
        tmp_path / "model.onnx", {"images": [1, 3, 64, 96]}, {"hm": [1, 2, 16, 24], "wh": [1, 2, 16, 24]}
    )
    card = load_card(tmp_path / "card.yaml")
    assert card.output_names == ("hm", "wh")


@pytest.mark.parametrize(
    ("onnx_inputs", "onnx_outputs", "field", "words"),
    [
        (
            {"images": [1, 3, 64, 64]},
            {"hm": [1, 2, 16, 24], "wh": [1, 2, 16, 24]},
            "inputs[0].shape[3]",
            "card says 96 but model.onnx has 64",
        ),
        (
            {"input": [1, 3, 64, 96]},
            {"hm": [1, 2, 16, 24], "wh": [1, 2, 16, 24]},
            "inputs",
            "does not describe",
        ),
        (
            {"images": [1, 3, 64, 96]},
            {"heat": [1, 2, 16, 24], "wh": [1, 2, 16, 24]},
            "outputs[0].name",
            "'hm' is not among",
        ),
        (
            {"images": [1, 3, 64, 96]},
            {"hm": [1, 2, 16, 24, 1], "wh": [1, 2, 16, 24]},
            "outputs[0].shape",
            "rank",
        ),
    ],
)
def test_card_onnx_mismatch_names_the_field(
    tmp_path: Path,
    onnx_inputs: dict[str, list[Any]],
    onnx_outputs: dict[str, list[Any]],
    field: str,
    words: str,
) -> None:
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(_card()))
    _write_onnx(tmp_path / "model.onnx", onnx_inputs, onnx_outputs)
    with pytest.raises(CardError) as info:
        load_card(tmp_path)
    assert info.value.field == field
    assert words in str(info.value)


def test_dynamic_card_dim_against_fixed_onnx_dim_is_rejected(tmp_path: Path) -> None:
    d = _card()
    d["inputs"][0]["shape"] = ["batch", 3, 64, 96]
    d["inputs"][0]["dynamic"] = {"batch": [1, 1, 4]}
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(d))
    _write_onnx(
        tmp_path / "model.onnx", {"images": [1, 3, 64, 96]}, {"hm": [1, 2, 16, 24], "wh": [1, 2, 16, 24]}
    )
    with pytest.raises(CardError, match=r"inputs\[0\].shape\[0\]: card says dynamic 'batch'"):
        load_card(tmp_path)


def test_symbolic_onnx_dim_accepts_a_fixed_card_dim(tmp_path: Path) -> None:
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(_card()))
    _write_onnx(
        tmp_path / "model.onnx", {"images": ["N", 3, 64, 96]}, {"hm": [1, 2, 16, 24], "wh": [1, 2, 16, 24]}
    )
    assert load_card(tmp_path).image_input.shape[0] == 1


def test_missing_model_file_is_a_card_error(tmp_path: Path) -> None:
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(_card()))
    with pytest.raises(CardError, match="model: model file not found"):
        load_card(tmp_path)


def test_invalid_yaml_is_a_card_error(tmp_path: Path) -> None:
    (tmp_path / "card.yaml").write_text("name: [unclosed\n")
    with pytest.raises(CardError, match="not valid YAML"):
        load_card(tmp_path, check_onnx=False)
