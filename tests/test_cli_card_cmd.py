"""``perception card hash`` writes the model's sha256 into a card and nothing else; ``perception card check``
loads a card as a node does and warms its model up."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from helpers.models import nan_detector, toy_model

from perception_pkg.cli.card_cmd import with_sha256
from perception_pkg.cli.main import main

CARD_TEXT = """# a hand-written card: comments and layout must survive
name: toy
model: model.onnx   # the export
inputs:
- {name: images, shape: [1, 3, 16, 16]}
outputs:
- name: y
  shape: [1, 3]
"""


def test_hash_inserts_the_line_after_model_and_keeps_everything_else(tmp_path: Path, capsys) -> None:
    toy_model(tmp_path)
    card = tmp_path / "card.yaml"
    card.write_text(CARD_TEXT)
    digest = hashlib.sha256((tmp_path / "model.onnx").read_bytes()).hexdigest()
    assert main(["card", "hash", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"{card}: sha256 {digest}"
    lines = CARD_TEXT.splitlines()
    assert card.read_text().splitlines() == [*lines[:3], f"sha256: {digest}", *lines[3:]]
    (tmp_path / "model.onnx").write_bytes((tmp_path / "model.onnx").read_bytes() + b"\0")  # re-exported
    assert main(["card", "hash", str(card)]) == 0  # replaces the line, adds none
    new = hashlib.sha256((tmp_path / "model.onnx").read_bytes()).hexdigest()
    assert card.read_text().splitlines() == [*lines[:3], f"sha256: {new}", *lines[3:]]


def test_with_sha256_without_a_model_line_goes_after_the_name() -> None:
    assert with_sha256("name: x\ninputs: []\n", "ab" * 32) == f"name: x\nsha256: {'ab' * 32}\ninputs: []\n"


def test_hash_of_a_card_whose_model_is_missing_exits_2(tmp_path: Path, capsys) -> None:
    (tmp_path / "card.yaml").write_text(CARD_TEXT)
    assert main(["card", "hash", str(tmp_path / "card.yaml")]) == 2
    assert "model file not found" in capsys.readouterr().err
    assert (tmp_path / "card.yaml").read_text() == CARD_TEXT


def test_check_says_ok_for_a_good_card_and_why_not_for_a_nan_model(tmp_path: Path, capsys) -> None:
    good = toy_model(tmp_path / "good")
    assert main(["card", "hash", str(good)]) == 0
    bad = nan_detector(tmp_path / "nan")
    capsys.readouterr()
    assert main(["card", "check", str(good), str(bad)]) == 2
    captured = capsys.readouterr()
    assert f"{good}: ok: toy (other, decoder raw, sha256 " in captured.out
    assert "sha256: model.onnx has sha256" in captured.err  # the shipped card's sha256 refuses the copy
    assert main(["card", "hash", str(bad)]) == 0
    capsys.readouterr()
    assert main(["card", "check", str(bad)]) == 2
    assert "sim_detector: non-finite values at warm-up in output hm" in capsys.readouterr().err
    assert yaml.safe_load(bad.read_text())["name"] == "sim_detector"


@pytest.mark.parametrize("factory", ["subprocess:run", "os:system"])
def test_check_refuses_a_torch_factory_nobody_registered(tmp_path: Path, capsys, factory: str) -> None:
    card = toy_model(tmp_path, extra={"torch": {"factory": factory, "kwargs": {"args": ["true"]}}})
    main(["card", "hash", str(card)])
    capsys.readouterr()
    assert main(["card", "check", str(card)]) == 2
    assert f"torch.factory: unknown torch factory '{factory}' (a card never names an import path)" in (
        capsys.readouterr().err
    )
