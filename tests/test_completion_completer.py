"""The engine side: one batched call per scan (chunked at the card's largest batch), seeded resampling,
the completion decoder's checks, and cards that are not completion cards refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.completion import planted_identity_card

from perception_pkg.cards.errors import CardError
from perception_pkg.cards.loader import load_card
from perception_pkg.completion import Completer


class CountingEngine:
    """Wraps an engine and records the batch size of every call."""

    def __init__(self, engine) -> None:
        self.engine, self.calls = engine, []

    def infer(self, inputs):
        self.calls.append(next(iter(inputs.values())).shape[0])
        return self.engine.infer(inputs)


def test_objects_go_through_one_call_per_max_batch_and_come_back_in_order(tmp_path: Path) -> None:
    completer = Completer.from_card(planted_identity_card(tmp_path, max_batch=4), "onnxruntime")
    completer.engine = CountingEngine(completer.engine)
    rng = np.random.default_rng(0)
    objects = [rng.normal(size=(int(n), 3)) + 10 * i for i, n in enumerate((5, 40, 2000, 300, 77, 9))]
    out = completer.complete(objects)
    assert completer.engine.calls == [4, 2]
    assert out.shape == (6, 2048, 3) and out.dtype == np.float32
    for o, pts in zip(out, objects, strict=True):
        d = np.linalg.norm(o[:, None] - pts[None].astype(np.float32), axis=2)
        assert d.min(axis=1).max() < 1e-5  # each completion is made of its own object's points
    np.testing.assert_array_equal(out, completer.complete(objects))  # seeded: same input, same output
    assert completer.complete([]).shape == (0, 0, 3)


def test_completion_decoder_and_card_checks(tmp_path: Path) -> None:
    card_path = planted_identity_card(tmp_path)
    data = yaml.safe_load(card_path.read_text())
    data["outputs"][1]["shape"] = ["batch", 2048, 4]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(CardError, match="points"):
        load_card(bad, check_onnx=False)
    data = yaml.safe_load(card_path.read_text())
    data["task"] = "detection"
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="not a completion card"):
        Completer.from_card(other, "onnxruntime")
    with pytest.raises(ValueError, match="not found"):
        Completer.from_card(tmp_path / "missing.yaml")


class NaNEngine:
    """An engine whose ``fine`` output turns NaN (weights gone bad mid-run)."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def infer(self, inputs):
        out = dict(self.engine.infer(inputs))
        out["fine"] = np.full_like(out["fine"], np.nan)
        return out


def test_non_finite_model_outputs_are_an_error_not_a_completion(tmp_path: Path) -> None:
    from perception_pkg.engines.base import NonFiniteOutput

    completer = Completer.from_card(planted_identity_card(tmp_path), "onnxruntime")
    completer.engine = NaNEngine(completer.engine)
    with pytest.raises(NonFiniteOutput, match="fine"):
        completer.complete([np.random.default_rng(0).normal(size=(50, 3))])
