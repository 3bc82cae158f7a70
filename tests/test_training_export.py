"""torch -> ONNX export (opset >= 17, checker, static or dynamic batch) and ORT-vs-torch parity on random and
real inputs: fp32 max |diff| < 1e-4 of the output range."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from perception_pkg.cards import load_card  # noqa: E402
from perception_pkg.engines import load_engine  # noqa: E402
from perception_pkg.paths import assets_dir  # noqa: E402
from perception_pkg.preprocess import Preprocessor  # noqa: E402
from perception_pkg.training.export import export_onnx, parity_check  # noqa: E402
from perception_pkg.training.formats import centernet_card, topdown_card, write_model  # noqa: E402
from perception_pkg.training.models import TinyCenterNet, TinyTopDown, TinyYolov8, TinyYolox  # noqa: E402

TOL = 1e-4


def _real_image() -> np.ndarray | None:
    root = assets_dir()
    path = root / "coco" / "000000000785.jpg" if root else None
    if path is None or not path.is_file():
        return None
    import cv2

    return cv2.imread(str(path))


@pytest.fixture(scope="module")
def centernet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = TinyCenterNet(num_classes=4, width=8, head_width=16)
    with torch.no_grad():  # non-trivial BN statistics, so folding them into convs is actually exercised
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    card = centernet_card("cn", (128, 160), ["a", "b", "c", "d"])
    path = write_model(
        net,
        card,
        tmp_path_factory.mktemp("cn"),
        dynamo=True,
        weights=True,
        factory="perception_pkg.training.models:TinyCenterNet",
        factory_kwargs={"num_classes": 4, "width": 8, "head_width": 16},
    )
    return path.parent


def test_dynamo_export_is_static_opset_17_plus_and_checked(centernet_dir: Path) -> None:
    model = onnx.load(str(centernet_dir / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 128, 160]
    assert [o.name for o in model.graph.output] == ["hm", "wh", "reg"]


def test_parity_on_random_inputs(centernet_dir: Path) -> None:
    net = load_card(centernet_dir).torch
    assert net is not None
    from perception_pkg.engines.torch_backend import module_from_card

    module = module_from_card(load_card(centernet_dir))
    x = np.random.default_rng(0).normal(size=(1, 3, 128, 160)).astype(np.float32)
    report = parity_check(module, centernet_dir / "model.onnx", {"images": x}, tolerance=TOL)
    assert report.passed, str(report)
    assert [o.name for o in report.outputs] == ["hm", "wh", "reg"]
    assert all(o.output_range > 0 for o in report.outputs)


def test_parity_on_a_real_preprocessed_image(centernet_dir: Path) -> None:
    image = _real_image()
    if image is None:
        pytest.skip("real assets not found (set PERCEPTION_ASSETS to ../shared/assets)")
    card = load_card(centernet_dir)
    from perception_pkg.engines.torch_backend import module_from_card

    x = Preprocessor.from_card(card)(image).tensor
    report = parity_check(module_from_card(card), card.model_path, {"images": x}, tolerance=TOL)
    assert report.passed, str(report)


def test_torch_backend_from_card_matches_onnxruntime(centernet_dir: Path) -> None:
    card = load_card(centernet_dir)
    ort_engine = load_engine(card, backend="onnxruntime", threads=1)
    torch_engine = load_engine(card, backend="torch", threads=1)
    assert torch_engine.describe() == "torch eager (cpu, 1 threads)"
    x = np.random.default_rng(1).uniform(-2, 2, size=(1, 3, 128, 160)).astype(np.float32)
    a, b = ort_engine.infer({"images": x}), torch_engine.infer({"images": x})
    for name in ("hm", "wh", "reg"):
        assert np.abs(a[name] - b[name]).max() < TOL * (b[name].max() - b[name].min())


@pytest.mark.parametrize("dynamo", [False, True])
def test_dynamic_batch_export_runs_other_batch_sizes(tmp_path: Path, dynamo: bool) -> None:
    torch.manual_seed(0)
    net = TinyTopDown(num_keypoints=5, width=8)
    path = export_onnx(
        net,
        torch.rand(1, 3, 64, 48),
        tmp_path / "m.onnx",
        ["images"],
        ["heatmaps"],
        dynamic_batch=True,
        dynamo=dynamo,
    )
    model = onnx.load(str(path))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param != ""
    x = np.random.default_rng(2).normal(size=(3, 3, 64, 48)).astype(np.float32)
    report = parity_check(net, path, {"images": x}, tolerance=TOL)
    assert report.passed, str(report)


@pytest.mark.parametrize(
    ("net", "hw"),
    [
        (lambda: TinyYolox(num_classes=3), (128, 160)),
        (lambda: TinyYolov8(num_classes=3), (128, 160)),
        (lambda: TinyYolov8(num_classes=1, num_keypoints=17), (128, 160)),
        (lambda: TinyTopDown(num_keypoints=17, sigmoid=True), (64, 48)),
    ],
    ids=["yolox", "yolov8", "yolov8-pose", "topdown-sigmoid"],
)
def test_format_networks_export_with_parity(tmp_path: Path, net: object, hw: tuple[int, int]) -> None:
    torch.manual_seed(0)
    module = net()  # type: ignore[operator]
    path = export_onnx(module, torch.rand(1, 3, *hw), tmp_path / "m.onnx", ["images"], ["out"], dynamo=False)
    x = np.random.default_rng(3).normal(size=(1, 3, *hw)).astype(np.float32)
    report = parity_check(module, path, {"images": x}, tolerance=TOL)
    assert report.passed, str(report)


def test_export_refuses_opsets_below_17(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="opset 13 < 17"):
        export_onnx(TinyTopDown(2), torch.rand(1, 3, 32, 32), tmp_path / "m.onnx", ["x"], ["y"], opset=13)


def test_topdown_card_with_dynamic_batch_round_trips_through_write_model(tmp_path: Path) -> None:
    card_path = write_model(
        TinyTopDown(17, width=8), topdown_card("td", batch="batch"), tmp_path, dynamic_batch=True
    )
    card = load_card(card_path)
    assert card.image_input.dynamic["batch"] == (1, 4, 16)
    engine = load_engine(card, backend="onnxruntime", threads=1)
    out = engine.infer({"images": np.zeros((5, 3, 256, 192), dtype=np.float32)})
    assert out["heatmaps"].shape == (5, 17, 64, 48)
