"""cards/checksum.py and the checks on a model's outputs: a model whose largest weights were overwritten with
NaN still passes onnx.checker and runs; the card's sha256 refuses it at load, and with a recomputed sha256
the warm-up refuses it; outputs that turn non-finite later raise NonFiniteOutput per frame."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from helpers.models import nan_detector, toy_model

from perception_pkg.cards import CardError, file_sha256, load_card
from perception_pkg.cli.card_cmd import hash_card
from perception_pkg.engines import ModelRunner, NonFiniteOutput, load_engine
from perception_pkg.msgs import MessageFormatError
from perception_pkg.paths import models_dir


@pytest.fixture(scope="module")
def nan_card(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return nan_detector(tmp_path_factory.mktemp("nan_det"))


def test_shipped_cards_carry_the_sha256_of_their_model() -> None:
    cards = [models_dir() / "sim_detector" / "card.yaml", models_dir() / "sim_detector" / "pose_card.yaml"]
    cards += sorted((models_dir() / "sim_pose").glob("card*.yaml"))
    assert len(cards) == 13
    for path in cards:
        card = load_card(path, check_onnx=False, check_decoder=False)
        assert card.sha256 == hashlib.sha256(card.model_path.read_bytes()).hexdigest(), path


def test_a_nan_model_passes_onnx_checker_but_its_card_refuses_it(nan_card: Path) -> None:
    onnx.checker.check_model(onnx.load(str(nan_card.parent / "model.onnx")), full_check=True)  # "valid"
    with pytest.raises(CardError) as info:
        load_card(nan_card)
    shipped = load_card(models_dir() / "sim_detector" / "card.yaml", check_onnx=False).sha256
    assert info.value.field == "sha256"
    assert f"the card says {shipped}" in str(info.value)
    assert file_sha256(nan_card.parent / "model.onnx") in str(info.value)


def test_with_its_sha256_recomputed_the_nan_model_is_refused_at_warm_up(
    nan_card: Path, tmp_path: Path
) -> None:
    from perception_pkg.detection import Detector
    from perception_pkg.msgs import MessageFactory
    from perception_pkg.pipelines.detection import DetectionSettings, create
    from perception_pkg.runtime.settings import ConfigError

    card_path = tmp_path / "card.yaml"
    card_path.write_text(nan_card.read_text())
    (tmp_path / "model.onnx").symlink_to(nan_card.parent / "model.onnx")
    hash_card(card_path)
    card = load_card(card_path)  # the checksum now holds
    with pytest.raises(NonFiniteOutput, match="sim_detector: non-finite values at warm-up in output hm "):
        Detector(card, backend="onnxruntime", threads=1)
    with pytest.raises(ConfigError, match=r"node 'detection': .*non-finite values at warm-up"):
        create(DetectionSettings(model_card=str(card_path)), MessageFactory.rosbags(), live=True)


def test_non_finite_outputs_at_inference_raise_a_processing_error_not_malformed_input(
    nan_card: Path, tmp_path: Path
) -> None:
    from perception_pkg.detection import Detector

    card_path = tmp_path / "card.yaml"
    card_path.write_text(nan_card.read_text())
    (tmp_path / "model.onnx").symlink_to(nan_card.parent / "model.onnx")
    hash_card(card_path)
    detector = Detector(load_card(card_path), backend="onnxruntime", threads=1, warmup=False)
    image = np.full((480, 640, 3), 90, np.uint8)
    with pytest.raises(NonFiniteOutput) as info:
        detector(image)  # today: 0 detections, as if the road were empty
    assert isinstance(info.value, ValueError) and not isinstance(info.value, MessageFormatError)
    n, total = info.value.bad["hm"]
    assert n == total == 2 * 72 * 96


def test_outputs_that_turn_non_finite_on_some_frames_only(tmp_path: Path) -> None:
    card_path = toy_model(tmp_path, "sqrt_half", {"decoder": {"type": "raw"}})
    hash_card(card_path)
    runner = ModelRunner(load_card(card_path), backend="onnxruntime")  # warm-up on zeros: finite
    assert np.isfinite(runner(np.zeros((16, 16, 3), np.uint8))["y"]).all()
    bright = np.zeros((16, 16, 3), np.uint8)
    bright[:4, :4] = 255  # sqrt(0.5 - 1) on these 16 pixels x 3 channels
    with pytest.raises(NonFiniteOutput, match="toy: non-finite values at inference in output y 48/768"):
        runner(bright)


def test_warm_up_refuses_outputs_shaped_otherwise_than_the_card_says(tmp_path: Path) -> None:
    card_path = toy_model(tmp_path, "mean")
    data = yaml.safe_load(card_path.read_text())
    data["outputs"][0]["shape"] = [1, 3]  # the graph says so too: change what the model returns instead
    card_path.write_text(yaml.safe_dump(data))
    model = onnx.load(str(tmp_path / "model.onnx"))
    model.graph.node[0].attribute[1].i = 1  # keepdims=1: [1, 3, 1, 1]
    model.graph.output[0].type.tensor_type.ClearField("shape")  # an unknown output shape in the graph
    onnx.save(model, str(tmp_path / "model.onnx"))
    hash_card(card_path)
    engine = load_engine(load_card(card_path), backend="onnxruntime")
    with pytest.raises(CardError) as info:
        engine.warmup(runs=1)
    assert info.value.field == "outputs[0].shape" and "returned shape (1, 3, 1, 1)" in str(info.value)


def test_a_card_without_sha256_loads_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    card_path = toy_model(tmp_path)
    with caplog.at_level("WARNING", logger="perception_pkg.cards.checksum"):
        load_card(card_path, check_decoder=False)
        load_card(card_path, check_decoder=False)
    warnings = [r for r in caplog.records if "has no sha256" in r.getMessage()]
    assert len(warnings) == 1 and "perception card hash" in warnings[0].getMessage()


def test_the_engine_checks_the_model_even_for_a_card_parsed_without_it(tmp_path: Path) -> None:
    card_path = toy_model(tmp_path)
    hash_card(card_path)
    card = load_card(card_path, check_onnx=False)
    (tmp_path / "model.onnx").write_bytes((tmp_path / "model.onnx").read_bytes() + b"\0")
    with pytest.raises(CardError, match="sha256"):
        load_engine(card, backend="onnxruntime")


def test_the_pose_path_reports_non_finite_outputs_too(nan_card: Path, tmp_path: Path) -> None:
    from perception_pkg.pose import PoseEstimator

    card_path = tmp_path / "pose_card.yaml"
    card_path.write_text((models_dir() / "sim_detector" / "pose_card.yaml").read_text())
    (tmp_path / "model.onnx").symlink_to(nan_card.parent / "model.onnx")
    hash_card(card_path)
    with pytest.raises(NonFiniteOutput, match="sim_detector_pose: non-finite values at warm-up"):
        PoseEstimator(load_card(card_path), backend="onnxruntime", threads=1)
    estimator = PoseEstimator(load_card(card_path), backend="onnxruntime", threads=1, warmup=False)
    with pytest.raises(NonFiniteOutput, match="at inference"):
        estimator(np.full((480, 640, 3), 90, np.uint8))


def test_per_frame_the_outputs_the_decoder_reads_are_checked_and_unread_heads_are_not() -> None:
    """The shipped detector also carries pose heads its decoder never reads: a NaN there cannot reach a
    detection, so the per-frame check skips it (the warm-up still checks every output)."""
    runner = ModelRunner(load_card(models_dir() / "sim_detector" / "card.yaml"), backend="onnxruntime")
    assert "hm" in runner.checked and "pose_off" not in runner.checked
    outputs = runner.run_engine(runner.preprocess(np.zeros((480, 640, 3), np.uint8)))
    unread = {**outputs, "pose_off": np.full_like(outputs["pose_off"], np.nan)}
    assert runner.check(unread) is unread
    read = {**outputs, "hm": outputs["hm"].copy()}
    read["hm"][0, 0, 0, :3] = np.inf
    with pytest.raises(NonFiniteOutput, match="output hm 3/"):
        runner.check(read)
