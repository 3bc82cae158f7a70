"""perception_pkg/weather/restorer.py (classifier, gate, restorer) and tensor.py, with planted ONNX models
whose outputs are known exactly (tests/helpers/weather.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.weather import planted_weather_cards

from perception_pkg.weather import ConditionClassifier, Gate, Restorer, WeatherRestorer
from perception_pkg.weather.conditions import ADVERSE, CONDITIONS
from perception_pkg.weather.tensor import from_tensor, to_tensor


@pytest.fixture(scope="module")
def cards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pytest.importorskip("torch")
    return planted_weather_cards(tmp_path_factory.mktemp("weather"))


DARK = np.full((48, 64, 3), 20, np.uint8)
BRIGHT = np.full((48, 64, 3), 200, np.uint8)


def test_classifier_names_the_condition_of_the_planted_logits(cards: tuple[Path, Path]) -> None:
    clf = ConditionClassifier(cards[1], backend="onnxruntime")
    night, clear = clf(DARK), clf(BRIGHT)
    assert (night.condition, clear.condition) == ("night", "clear")
    assert night.confidence > 0.99 and clear.confidence > 0.99
    assert night.probabilities.sum() == pytest.approx(1.0)
    assert clear.probability("clear") == clear.confidence and clear.probability("unknown") == 0.0


def test_restorer_card_runs_through_the_image_decoder_exactly(cards: tuple[Path, Path]) -> None:
    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    out = Restorer(cards[0], backend="onnxruntime")(img)
    np.testing.assert_array_equal(out, 255 - img)  # planted: the negative, through ORT and the card
    big = np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    assert Restorer(cards[0], backend="onnxruntime")(big).shape == big.shape  # back at the input's size


def test_auto_gate_restores_adverse_frames_and_passes_clear_ones_as_the_same_array(
    cards: tuple[Path, Path],
) -> None:
    w = WeatherRestorer(
        Restorer(cards[0], backend="onnxruntime"),
        Gate("auto"),
        ConditionClassifier(cards[1], backend="onnxruntime"),
    )
    clear = w(BRIGHT)
    assert not clear.restored and clear.image is BRIGHT and clear.classification.condition == "clear"
    assert "restore" not in clear.timings and "classify" in clear.timings
    night = w(DARK)
    assert night.restored and int(night.image[0, 0, 0]) == 235
    # night left out of the gate, or a confidence bar above what the classifier gives: passed through
    assert not WeatherRestorer(w.restorer, Gate("auto", ("fog",)), w.classifier)(DARK).restored
    assert not WeatherRestorer(w.restorer, Gate("auto", ADVERSE, 1.01 - 1e-9), w.classifier)(DARK).restored


def test_fog_is_restored_only_from_the_gates_haze_density_on() -> None:
    from perception_pkg.weather import Classification

    fog = Classification("fog", 0.97, np.eye(len(CONDITIONS))[CONDITIONS.index("fog")])
    rain = Classification("rain", 0.97, np.eye(len(CONDITIONS))[CONDITIONS.index("rain")])
    gate = Gate("auto", ("fog", "rain"), 0.5, min_haze=0.46)
    assert gate.needs_haze(fog) and not gate.needs_haze(rain) and not gate.needs_haze(None)
    assert not gate.decide(fog) and not gate.decide(fog, 0.45) and gate.decide(fog, 0.46)
    assert gate.decide(rain)  # the haze bar is for fog only
    assert not Gate("auto", ("fog",)).needs_haze(fog) and Gate("auto", ("fog",)).decide(fog)  # 0: any fog
    assert not Gate("auto", ("rain",), 0.5, 0.46).needs_haze(fog)  # fog not gated: nothing to measure


class _Fixed:
    """A classifier that always says the same."""

    def __init__(self, c) -> None:
        self.c = c

    def __call__(self, _bgr):
        return self.c


def test_the_restorer_measures_haze_only_for_gated_fog_and_reports_it() -> None:
    from perception_pkg.weather import Classification

    fog = Classification("fog", 0.97, np.eye(len(CONDITIONS))[CONDITIONS.index("fog")])
    hazy = np.full((120, 160, 3), 210, np.uint8)  # all airlight: haze density 0.82
    light = np.full((120, 160, 3), 210, np.uint8)
    light[::4, ::4] = 0  # dark pixels in every patch of the thumbnail: density near 0
    w = WeatherRestorer(Restorer("identity"), Gate("auto", ("fog",), 0.5, 0.46), _Fixed(fog))  # type: ignore[arg-type]
    dense, thin = w(hazy), w(light)
    assert dense.restored and dense.haze == pytest.approx(210 / 255, abs=1e-6) and "haze" in dense.timings
    assert not thin.restored and thin.haze < 0.05 and thin.image is light
    plain = WeatherRestorer(Restorer("identity"), Gate("auto", ("fog",)), _Fixed(fog))(light)  # type: ignore[arg-type]
    assert plain.restored and plain.haze is None and "haze" not in plain.timings


def test_always_and_off_modes_ignore_the_classifier() -> None:
    ident = Restorer("identity")
    always = WeatherRestorer(ident, Gate("always"), None, classify=False)
    assert always(BRIGHT).restored and always(BRIGHT).classification is None
    off = WeatherRestorer(ident, Gate("off"), None)
    res = off(DARK)
    assert not res.restored and res.image is DARK
    with pytest.raises(ValueError, match="needs a condition classifier"):
        WeatherRestorer(ident, Gate("auto"), None)


def test_gate_rejects_unknown_modes_and_conditions() -> None:
    with pytest.raises(ValueError, match="mode"):
        Gate("sometimes")
    with pytest.raises(ValueError, match="hail"):
        Gate("auto", ("fog", "hail"))
    assert Gate().decide(None) is False


def test_cards_of_the_wrong_kind_are_refused_with_the_path(cards: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="raw"):
        ConditionClassifier(cards[0], backend="onnxruntime")  # an image-decoder card is no classifier
    with pytest.raises(ValueError, match="does not return an image"):
        Restorer(cards[1], backend="onnxruntime")
    spec = yaml.safe_load(cards[1].read_text())
    spec["classes"] = ["day", "dusk", "x", "y", "z"]
    bad = cards[1].parent / "no_clear.yaml"
    bad.write_text(yaml.safe_dump(spec))
    with pytest.raises(ValueError, match="clear"):
        ConditionClassifier(bad, backend="onnxruntime")
    assert CONDITIONS[0] == "clear"


def test_tensor_helpers_round_trip_both_ranges_and_colour_orders() -> None:
    img = np.random.default_rng(2).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    for rng in ("tanh", "unit"):
        t = to_tensor(img, rng)
        assert t.shape == (2, 3, 5, 7) and t.dtype == np.float32
        assert t.min() >= (-1 if rng == "tanh" else 0) and t.max() <= 1
        np.testing.assert_array_equal(from_tensor(t, rng), img)
    t = to_tensor(img[0], "tanh", bgr=True)  # BGR in: channel 0 of the tensor is red = last of BGR
    np.testing.assert_allclose(t[0, 0], img[0, ..., 2] / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(from_tensor(t, "tanh", bgr=True)[0], img[0])
    with pytest.raises(ValueError):
        to_tensor(img, "other")


@pytest.mark.slow
def test_shipped_model_names_and_clears_the_fog_of_an_unseen_simulator_frame(tmp_path: Path) -> None:
    """models/sim_weather on a frame of a scene seed it never saw: the classifier says fog, the gate of the
    default settings restores it, and the restored frame is closer to the clean one (PSNR, dB)."""
    from perception_pkg.pipelines.weather import WeatherSettings
    from perception_pkg.sim import generate
    from perception_pkg.weather.restorer import DEFAULT_MODEL, resolve_card

    if not resolve_card(None, DEFAULT_MODEL).is_file():
        pytest.skip("models/sim_weather not present")
    import cv2

    generate(tmp_path, 3_100_950, 1, bag=False, dataset=True, weather=["fog"], severities=[3], objects=False)
    clean = cv2.imread(str(tmp_path / "dataset/images/clean/000000.png"))
    foggy = cv2.imread(str(tmp_path / "dataset/images/fog_s3/000000.png"))
    w = WeatherRestorer(Restorer(None, backend="onnxruntime"), WeatherSettings().gate(),
                        ConditionClassifier(None, backend="onnxruntime"))  # fmt: skip
    res = w(foggy)
    assert res.classification.condition == "fog" and res.restored

    def psnr(a: np.ndarray) -> float:
        return 10 * np.log10(255.0**2 / np.mean((a.astype(float) - clean.astype(float)) ** 2))

    assert res.image.shape == foggy.shape and psnr(res.image) > psnr(foggy) + 2.0
