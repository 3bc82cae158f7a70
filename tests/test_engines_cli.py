"""CLI: build-engine fails clearly without TensorRT, naming the fallback; bench writes timings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper

from perception_pkg.cli.main import main


def _toy_card(tmp_path: Path) -> Path:
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    node = helper.make_node("ReduceMean", ["images"], ["y"], axes=[2, 3], keepdims=0)
    graph = helper.make_graph([node], "g", [x], [y])
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9),
        str(tmp_path / "model.onnx"),
    )
    card = {
        "name": "toy",
        "inputs": [{"name": "images", "shape": [1, 3, 16, 16]}],
        "outputs": [{"name": "y", "shape": [1, 3]}],
    }
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(card))
    return tmp_path / "card.yaml"


def test_build_engine_without_tensorrt_fails_clearly_naming_the_fallback(tmp_path: Path, capsys: Any) -> None:
    from perception_pkg.engines.tensorrt_backend import tensorrt_problem

    if tensorrt_problem() is None:
        pytest.skip("TensorRT usable here: the command would build")
    code = main(["build-engine", "--card", str(_toy_card(tmp_path)), "--precision", "fp16"])
    err = capsys.readouterr().err
    assert code == 3
    assert "TensorRT is unavailable here (tensorrt not installed" in err
    assert "no engine was built for 'toy'" in err
    assert "At run time this model will use onnxruntime-" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--calib-bag", "bag"], "--calib-bag needs --calib-topic"),
        (["--calib-topic", "/cam"], "--calib-topic needs --calib-bag"),
    ],
)
def test_build_engine_rejects_half_a_bag_source(
    tmp_path: Path, capsys: Any, extra: list[str], message: str
) -> None:
    code = main(["build-engine", "--card", str(_toy_card(tmp_path)), "--precision", "int8", *extra])
    assert code == 2
    assert message in capsys.readouterr().err


def test_build_engine_reports_an_invalid_card(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "card.yaml").write_text(yaml.safe_dump({"name": "x", "inputs": [], "outputs": []}))
    assert main(["build-engine", "--card", str(tmp_path)]) == 2
    assert "invalid card" in capsys.readouterr().err


def test_bench_onnxruntime_only_writes_json_with_stage_timings(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--card",
            str(_toy_card(tmp_path)),
            "--runs",
            "3",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--no-torch",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    (model,) = report["models"]
    assert model["model"] == "toy" and model["input_shape"] == [1, 3, 16, 16]
    assert set(model["infer"]) == {"onnxruntime-cpu"}
    for stage in (model["preprocess"], model["decode"], model["infer"]["onnxruntime-cpu"]):
        assert stage["runs"] == 3 and 0 < stage["median_ms"] <= stage["p99_ms"]
    assert report["command"].startswith("perception bench --runs 3 --warmup 1 --card=")
    assert "toy" in capsys.readouterr().out


def test_bench_compares_torch_eager_when_asked_and_the_card_has_a_torch_definition(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from perception_pkg.training.formats import centernet_card, write_model
    from perception_pkg.training.models import TinyCenterNet

    torch.manual_seed(0)
    kwargs = {"num_classes": 2, "width": 4, "head_width": 8}
    card = write_model(
        TinyCenterNet(**kwargs),
        centernet_card("cn", (64, 64), ["a", "b"]),
        tmp_path / "cn",
        weights=True,
        factory="perception_pkg.training.models:TinyCenterNet",
        factory_kwargs=kwargs,
    )
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "--card",
                str(card),
                "--runs",
                "3",
                "--warmup",
                "1",
                "--threads",
                "1",
                "--torch",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    (model,) = json.loads(out.read_text())["models"]
    assert set(model["infer"]) >= {"onnxruntime-cpu", "torch-cpu"}
    ratio = model["infer"]["torch-cpu"]["median_ms"] / model["infer"]["onnxruntime-cpu"]["median_ms"]
    assert model["torch_over_ort_infer_ratio"] == pytest.approx(ratio)
    assert set(model["goals"]) == {"pre_plus_decode_under_20pct", "ort_at_least_1.5x_faster_than_torch_eager"}
    assert np.isfinite(model["pre_plus_decode_share_of_ort_infer"])


def test_bench_never_takes_torch_for_a_card_unless_asked(tmp_path: Path, capsys: Any) -> None:
    pytest.importorskip("torch")  # installed: the old bench then ran the card's torch.factory
    marker = tmp_path / "ran"
    card = _toy_card(tmp_path)
    data = yaml.safe_load(card.read_text())
    data["torch"] = {"factory": "subprocess:run", "kwargs": {"args": ["touch", str(marker)]}}
    card.write_text(yaml.safe_dump(data))
    out = tmp_path / "bench.json"
    args = [
        "bench",
        "--card",
        str(card),
        "--runs",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--json",
        str(out),
    ]
    assert main(args) == 0
    assert set(json.loads(out.read_text())["models"][0]["infer"]) == {"onnxruntime-cpu"}
    assert not marker.exists()
    assert main([*args, "--torch"]) == 2  # asked: the factory is not a registered name
    assert "torch.factory: unknown torch factory 'subprocess:run'" in capsys.readouterr().err
    assert not marker.exists()
