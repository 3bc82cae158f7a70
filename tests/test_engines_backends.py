"""Backend selection (auto -> TensorRT / ORT CUDA / ORT CPU with a message naming the fallback), the ONNX
Runtime engine's interface and input checks, and the card-driven runner. No torch needed."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper

from perception_pkg.cards import load_card
from perception_pkg.engines import BackendUnavailable, ModelRunner, choose_backend, load_engine
from perception_pkg.engines.onnxruntime_backend import OrtEngine


def _ok() -> None:
    return None


def _missing(reason: str) -> Any:
    return lambda: reason


def test_auto_prefers_tensorrt_when_usable() -> None:
    choice = choose_backend("auto", _ok, _missing("never asked"))
    assert (choice.backend, choice.device, choice.label) == ("tensorrt", "cuda", "tensorrt")


def test_auto_falls_back_to_ort_cuda_naming_why() -> None:
    choice = choose_backend("auto", _missing("tensorrt not installed: No module named 'tensorrt'"), _ok)
    assert (choice.backend, choice.device) == ("onnxruntime", "cuda")
    assert "TensorRT unavailable (tensorrt not installed" in choice.message
    assert "falling back to onnxruntime with CUDA" in choice.message


def test_auto_falls_back_to_ort_cpu_naming_both_reasons() -> None:
    choice = choose_backend(
        "auto", _missing("no CUDA device 0 (0 found)"), _missing("CPU build of onnxruntime")
    )
    assert choice.label == "onnxruntime-cpu"
    assert "no CUDA device 0" in choice.message and "CPU build of onnxruntime" in choice.message
    assert choice.message.endswith("falling back to onnxruntime on CPU")


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("tensorrt", "tensorrt"),
        ("trt", "tensorrt"),
        ("onnxruntime", "onnxruntime-cpu"),
        ("ort", "onnxruntime-cpu"),
        ("onnxruntime-cuda", "onnxruntime-cuda"),
        ("torch", "torch-cpu"),
        ("torch-cuda", "torch-cuda"),
    ],
)
def test_explicit_backend_is_taken_without_probing(name: str, label: str) -> None:
    def boom() -> None:
        raise AssertionError("explicit choices must not probe")

    assert choose_backend(name, boom, boom).label == label


def test_unknown_backend_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown backend 'openvino'"):
        choose_backend("openvino", _ok, _ok)


def _model(path: Path, batch: Any = "batch") -> None:
    """images [batch, 3, 8, 8] -> doubled (same shape) and per-channel mean [batch, 3]."""
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, 8, 8])
    doubled = helper.make_tensor_value_info("doubled", TensorProto.FLOAT, [batch, 3, 8, 8])
    mean = helper.make_tensor_value_info("mean", TensorProto.FLOAT, [batch, 3])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    nodes = [
        helper.make_node("Mul", ["images", "two"], ["doubled"]),
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[2, 3], keepdims=0),
    ]
    graph = helper.make_graph(nodes, "g", [x], [doubled, mean], initializer=[two])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))


def _card_dir(tmp_path: Path, dynamic: bool = True, decoder: dict[str, Any] | None = None) -> Path:
    _model(tmp_path / "model.onnx", "batch" if dynamic else 1)
    spec: dict[str, Any] = {
        "name": "images",
        "shape": ["batch" if dynamic else 1, 3, 8, 8],
        "scale": 1.0,
        "color": "BGR",
        "resize": {"policy": "stretch"},
    }
    if dynamic:
        spec["dynamic"] = {"batch": [1, 2, 4]}
    card = {
        "name": "toy",
        "inputs": [spec],
        "outputs": [
            {"name": "doubled", "shape": [spec["shape"][0], 3, 8, 8]},
            {"name": "mean", "shape": [spec["shape"][0], 3]},
        ],
    }
    if decoder:
        card["decoder"] = decoder
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(card))
    return tmp_path / "card.yaml"


def test_load_engine_auto_here_falls_back_with_a_warning(tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    engine = load_engine(_card_dir(tmp_path), threads=1)
    from perception_pkg.engines.onnxruntime_backend import ort_cuda_problem
    from perception_pkg.engines.tensorrt_backend import tensorrt_problem

    if tensorrt_problem() is None:
        pytest.skip("TensorRT usable here: auto picks it")
    assert engine.backend == "onnxruntime"
    assert ("falling back to onnxruntime" in caplog.text) and "TensorRT unavailable" in caplog.text
    if ort_cuda_problem() is not None:
        assert engine.describe() == "onnxruntime (CPUExecutionProvider, 1 threads)"


def test_explicit_tensorrt_without_it_raises_backend_unavailable(tmp_path: Path) -> None:
    from perception_pkg.engines.tensorrt_backend import tensorrt_problem

    if tensorrt_problem() is None:
        pytest.skip("TensorRT usable here")
    with pytest.raises(BackendUnavailable, match="tensorrt unavailable: "):
        load_engine(_card_dir(tmp_path), backend="tensorrt")


def test_explicit_ort_cuda_without_cuda_raises_with_reason(tmp_path: Path) -> None:
    from perception_pkg.engines.onnxruntime_backend import ort_cuda_problem

    if ort_cuda_problem() is None:
        pytest.skip("onnxruntime has CUDA here")
    with pytest.raises(BackendUnavailable, match="CUDAExecutionProvider not in"):
        load_engine(_card_dir(tmp_path), backend="onnxruntime-cuda")


def test_ort_engine_infers_and_reports_specs(tmp_path: Path) -> None:
    engine = OrtEngine(load_card(_card_dir(tmp_path)), threads=1)
    x = np.arange(2 * 3 * 8 * 8, dtype=np.float64).reshape(
        2, 3, 8, 8
    )  # float64 is cast to the card's float32
    out = engine.infer({"images": x})
    np.testing.assert_allclose(out["doubled"], 2 * x, rtol=1e-6)
    np.testing.assert_allclose(out["mean"], x.mean(axis=(2, 3)), rtol=1e-6)
    assert out["doubled"].dtype == np.float32
    assert [s.name for s in engine.input_specs] == ["images"]
    assert [s.name for s in engine.output_specs] == ["doubled", "mean"]
    assert engine.input_specs[0].concrete("max") == (4, 3, 8, 8)
    engine.warmup(1)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"image": np.zeros((1, 3, 8, 8))}, r"expected inputs \['images'\], got \['image'\]"),
        ({"images": np.zeros((1, 3, 8))}, "needs rank 4"),
        ({"images": np.zeros((1, 3, 8, 9))}, "axis 3 must be 8"),
        ({"images": np.zeros((5, 3, 8, 8))}, r"axis 0 \(batch\) must be in \[1, 4\], got 5"),
    ],
)
def test_engine_rejects_inputs_that_break_the_card(
    tmp_path: Path, inputs: dict[str, Any], message: str
) -> None:
    engine = OrtEngine(load_card(_card_dir(tmp_path)), threads=1)
    with pytest.raises(ValueError, match=message):
        engine.infer(inputs)


def test_runner_chunks_batches_beyond_the_engine_max(tmp_path: Path) -> None:
    runner = ModelRunner(load_card(_card_dir(tmp_path, dynamic=False)), backend="onnxruntime", threads=1)
    assert runner.max_batch == 1
    from perception_pkg.preprocess import AffineTransform, Prepared

    tensor = np.random.default_rng(0).normal(size=(3, 3, 8, 8)).astype(np.float32)
    out = runner.infer(Prepared(tensor, AffineTransform.identity(), (8, 8)))
    np.testing.assert_allclose(out["doubled"], 2 * tensor, rtol=1e-6)


def test_runner_raw_decoder_passes_outputs_through(tmp_path: Path) -> None:
    runner = ModelRunner(load_card(_card_dir(tmp_path)), backend="onnxruntime", threads=1)
    image = np.full((16, 24, 3), 10, dtype=np.uint8)
    out = runner(image)
    np.testing.assert_allclose(out["mean"], [[10.0, 10.0, 10.0]], rtol=1e-6)  # BGR, scale 1, stretch


def test_importing_engines_pulls_in_no_heavy_library() -> None:
    import subprocess

    code = (
        "import sys, perception_pkg.engines, perception_pkg.decoders, perception_pkg.cards, "
        "perception_pkg.preprocess; print(sorted(m for m in ('torch', 'tensorrt', 'onnxruntime', 'rclpy', "
        "'pycuda') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_auto_falls_back_to_onnxruntime_when_the_tensorrt_build_fails(
    tmp_path: Path, caplog: Any, monkeypatch: Any
) -> None:
    from perception_pkg.engines import EngineError, select, tensorrt_backend

    def failing_engine(*args: Any, **kwargs: Any) -> None:
        raise EngineError("TensorRT could not parse model.onnx: unsupported operator GridSample")

    monkeypatch.setattr(select, "_default_probes", lambda: (_ok, _missing("CPU build of onnxruntime")))
    monkeypatch.setattr(tensorrt_backend, "TensorRTEngine", failing_engine)
    caplog.set_level(logging.WARNING)
    engine = load_engine(_card_dir(tmp_path), threads=1)
    assert engine.describe().startswith("onnxruntime (CPUExecutionProvider")
    assert (
        "TensorRT failed (TensorRT could not parse model.onnx: unsupported operator GridSample)"
        in caplog.text
    )
    with pytest.raises(EngineError, match="unsupported operator"):
        load_engine(_card_dir(tmp_path), backend="tensorrt")
