"""Small ONNX models and cards made in tests, and a damaged copy of the shipped detector."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

from perception_pkg.paths import models_dir


def toy_model(folder: Path, op: str = "mean", extra: dict[str, Any] | None = None) -> Path:
    """``folder/model.onnx`` + ``card.yaml``: images [1, 3, 16, 16] -> y. ``op``: "mean" (y [1, 3], the
    channel means) or "sqrt_half" (y = sqrt(0.5 - x), [1, 3, 16, 16]: finite for inputs <= 0.5, NaN for
    brighter ones). ``extra`` is merged into the card."""
    folder.mkdir(parents=True, exist_ok=True)
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 16, 16])
    if op == "mean":
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
        nodes = [helper.make_node("ReduceMean", ["images"], ["y"], axes=[2, 3], keepdims=0)]
        inits = []
        out_shape = [1, 3]
    elif op == "sqrt_half":
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 16, 16])
        inits = [numpy_helper.from_array(np.array(0.5, np.float32), "half")]
        nodes = [helper.make_node("Sub", ["half", "images"], ["d"]), helper.make_node("Sqrt", ["d"], ["y"])]
        out_shape = [1, 3, 16, 16]
    else:
        raise ValueError(op)
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.save(model, str(folder / "model.onnx"))
    card = {
        "name": "toy",
        "inputs": [{"name": "images", "shape": [1, 3, 16, 16]}],
        "outputs": [{"name": "y", "shape": out_shape}],
        **(extra or {}),
    }
    (folder / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    return folder / "card.yaml"


def nan_detector(folder: Path, largest: int = 3) -> Path:
    """The shipped detector with its ``largest`` biggest weight tensors filled with NaN, beside a copy of
    its card (whose sha256 is still the shipped model's). Returns the card path."""
    folder.mkdir(parents=True, exist_ok=True)
    src = models_dir() / "sim_detector"
    model = onnx.load(str(src / "model.onnx"))
    by_size = sorted(model.graph.initializer, key=lambda t: int(np.prod(t.dims)), reverse=True)
    for tensor in by_size[:largest]:
        arr = numpy_helper.to_array(tensor)
        tensor.CopyFrom(numpy_helper.from_array(np.full_like(arr, np.nan), tensor.name))
    onnx.save(model, str(folder / "model.onnx"))
    shutil.copy(src / "card.yaml", folder / "card.yaml")
    return folder / "card.yaml"


def toy_centernet(folder: Path) -> Path:
    """A CenterNet-layout detection model (64x64 input, one class) whose heads are sqrt(0.5 - pixel)
    pooled to stride 4: finite on dark frames (and on the zeros of a warm-up), NaN on bright ones.
    Returns its card, sha256 included."""
    from perception_pkg.cards import file_sha256

    folder.mkdir(parents=True, exist_ok=True)
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    outs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, c, 16, 16])
        for n, c in (("hm", 1), ("wh", 2), ("reg", 2))
    ]
    nodes = [
        helper.make_node("Sub", ["half", "images"], ["d"]),
        helper.make_node("Sqrt", ["d"], ["s"]),
        helper.make_node("ReduceMean", ["s"], ["m"], axes=[1], keepdims=1),
        helper.make_node("AveragePool", ["m"], ["hm"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Concat", ["hm", "hm"], ["wh"], axis=1),
        helper.make_node("Concat", ["hm", "hm"], ["reg"], axis=1),
    ]
    init = [numpy_helper.from_array(np.array(0.5, np.float32), "half")]
    graph = helper.make_graph(nodes, "g", [x], outs, initializer=init)
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9),
        str(folder / "model.onnx"),
    )
    card = {
        "name": "toy_centernet",
        "task": "detection",
        "sha256": file_sha256(folder / "model.onnx"),
        "inputs": [{"name": "images", "shape": [1, 3, 64, 64],
                    "resize": {"policy": "letterbox", "pad_value": 0}}],
        "outputs": [{"name": "hm", "shape": [1, 1, 16, 16]}, {"name": "wh", "shape": [1, 2, 16, 16]},
                    {"name": "reg", "shape": [1, 2, 16, 16]}],
        "decoder": {"type": "centernet", "outputs": {"heatmap": "hm", "size": "wh", "offset": "reg"},
                    "params": {"stride": 4}},
        "classes": ["thing"],
    }  # fmt: skip
    (folder / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    return folder / "card.yaml"
