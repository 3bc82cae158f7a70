"""evaluation/weather.py: the measures (PSNR, SSIM, recovery, per-frame hallucination counts, the rule) on
known inputs, and `perception eval weather` end to end on a one-frame simulator dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception_pkg.evaluation.detect import EvalFrame, GroundTruth, Predictions
from perception_pkg.evaluation.weather import (
    _recovery,
    build_methods,
    evaluate_weather,
    frame_errors,
    psnr,
    robustness,
    rule_violations,
    ssim,
    write_report,
)


def test_psnr_and_ssim_on_known_images() -> None:
    a = np.full((32, 32, 3), 100, np.uint8)
    assert psnr(a, a) == float("inf") and ssim(a, a) == pytest.approx(1.0)
    b = a + np.uint8(round(0.1 * 255))
    assert psnr(a, b) == pytest.approx(10 * np.log10(1 / (26 / 255) ** 2), rel=1e-9)  # ~19.8 dB
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert ssim(a, noise) < 0.1


def test_ssim_matches_scikit_image() -> None:
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    ref = structural_similarity(
        a, b, channel_axis=2, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert ssim(a, b) == pytest.approx(ref, abs=1e-6)


def test_frame_errors_count_false_positives_and_misses_and_skip_ignored_ground_truth() -> None:
    gt = GroundTruth(
        boxes=np.array([[0, 0, 40, 80], [100, 0, 140, 80], [200, 0, 210, 10.0]]),
        classes=np.array(["person", "car", "car"]),
        visible_pixels=np.array([1000.0, 1000.0, 50.0]),  # the third is too small and hidden: ignored
    )
    pred = Predictions(
        boxes=np.array([[1, 1, 40, 80], [300, 300, 340, 380], [200, 0, 210, 10], [100, 0, 140, 80.0]]),
        scores=np.array([0.9, 0.8, 0.7, 0.2]),  # a hit, a false positive, one on the ignored GT, one too low
        classes=np.array(["person", "person", "car", "car"]),
    )
    assert frame_errors(EvalFrame("f", gt, pred)) == (1, 1)  # 1 false positive, the car missed


def test_recovery_ratio_and_the_rule_are_what_the_issue_defines() -> None:
    assert _recovery(0.7, 0.5, 0.9) == pytest.approx(0.5)
    assert _recovery(0.7, 0.9, 0.9) is None  # nothing to recover
    report = {
        "cells": {
            "fog_s1": {"degraded": {"AP50": 0.8}, "ours": {"AP50": 0.75}, "dcp": {"AP50": 0.85}},
            "fog_s2": {"degraded": {"AP50": 0.6}, "ours": {"AP50": 0.7}, "dcp": {"AP50": 0.5}},
        },
        "clean": {"AP50": 0.9},
    }
    bad = rule_violations(report, ["ours", "dcp"])
    assert bad == {"ours": ["fog_s1 (-0.050)"], "dcp": ["fog_s2 (-0.100)"]}
    rob = robustness(report, ["fog"], [], [1, 2])
    assert rob["detector_alone"]["mPC"] == pytest.approx(0.7)
    assert rob["detector_alone"]["rPC"] == pytest.approx(0.7 / 0.9)
    assert "with_ours_gated" not in rob and rob["with_ours"]["mPC"] == pytest.approx(0.725)


@pytest.fixture(scope="module")
def one_frame(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from perception_pkg.sim import generate

    out = tmp_path_factory.mktemp("wsim")
    generate(
        out,
        3100900,
        1,
        bag=False,
        dataset=True,
        weather=["fog", "night"],
        severities=[3],
        objects=False,
        shadows=False,
    )
    return out / "dataset"


@pytest.mark.slow
def test_eval_weather_end_to_end_on_a_simulator_frame(one_frame: Path, tmp_path: Path) -> None:
    from perception_pkg.detection import default_detector_card

    if not default_detector_card().is_file():
        pytest.skip("shipped detector not present")
    methods = build_methods(["gamma", "identity"])
    report, samples = evaluate_weather([one_frame], methods, conditions=["fog", "night"], severities=[3])
    assert report["frames"] == 1 and set(report["cells"]) == {"clear", "fog_s3", "night_s3"}
    assert report["cells"]["clear"]["identity"]["AP50"] == report["clean"]["AP50"]
    night = report["cells"]["night_s3"]
    assert night["identity"]["AP50"] == night["degraded"]["AP50"]  # doing nothing is not restoring
    assert night["identity"]["psnr"] == night["degraded"]["psnr"]
    assert night["gamma"]["psnr"] > night["degraded"]["psnr"] + 3  # brightening a dark frame helps PSNR
    assert night["degraded"]["ssim"] < report["cells"]["fog_s3"]["degraded"]["ssim"] + 1
    assert set(samples["strips"]) == {"fog", "night"}
    written = write_report(report, samples, tmp_path / "out")
    assert all(p.is_file() for p in written.values())
    with pytest.raises(ValueError, match="unknown method"):
        build_methods(["nonsense"])
