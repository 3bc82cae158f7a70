"""perception_pkg/weather/baselines.py: each classical restoration does what it is for, measured."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from perception_pkg.weather.baselines import (
    BASELINES,
    auto_exposure,
    clahe_luminance,
    dark_channel,
    dark_channel_dehaze,
    guided_filter,
    haze_density,
    identity,
)


def _scene(h: int = 240, w: int = 320) -> np.ndarray:
    """A textured colour scene (blocks of saturated colours plus noise), BGR uint8."""
    rng = np.random.default_rng(3)
    blocks = rng.integers(0, 256, (h // 20, w // 20, 3)).astype(np.uint8)
    img = cv2.resize(blocks, (w, h), interpolation=cv2.INTER_NEAREST).astype(np.float64)
    img += rng.normal(0, 6, img.shape)
    # dark channel prior holds for real scenes (shadows, saturated colours): give every patch a dark pixel
    img[::10, ::10] = 0
    return np.clip(img, 0, 255).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def test_dark_channel_prior_undoes_uniform_haze_far_better_than_leaving_it() -> None:
    clean = _scene()
    t, airlight = 0.4, np.array([205.0, 200.0, 195.0])
    hazy = np.clip(clean * t + airlight * (1 - t), 0, 255).astype(np.uint8)
    out = dark_channel_dehaze(hazy)
    assert out.shape == hazy.shape and out.dtype == np.uint8
    assert _psnr(out, clean) > _psnr(hazy, clean) + 6.0


def test_dark_channel_is_the_patch_minimum_of_the_channel_minimum() -> None:
    x = np.full((30, 30, 3), 0.8, np.float32)
    x[15, 15, 1] = 0.1
    d = dark_channel(x, 7)
    assert d[15, 15] == pytest.approx(0.1) and d[12, 18] == pytest.approx(0.1)  # within 3 px
    assert d[11, 15] == pytest.approx(0.8) and d[0, 0] == pytest.approx(0.8)


def test_guided_filter_keeps_edges_of_its_own_guide_and_averages_a_flat_guide() -> None:
    step = np.zeros((40, 40), np.float32)
    step[:, 20:] = 1.0
    kept = guided_filter(step, step, radius=4, eps=1e-6)
    assert np.abs(kept - step).max() < 1e-2  # guide = source: the edge survives
    noise = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    flat = guided_filter(np.ones((40, 40), np.float32), noise, radius=4, eps=1e-3)
    box = cv2.blur(
        cv2.blur(noise, (9, 9), borderType=cv2.BORDER_REFLECT), (9, 9), borderType=cv2.BORDER_REFLECT
    )
    assert np.abs(flat - box).max() < 1e-4  # a flat guide: a = 0, b = mean(p), output = mean(mean(p))


def test_auto_exposure_brings_a_dark_frame_to_the_target_and_never_darkens() -> None:
    clean = _scene()
    dark = (0.2 * (clean / 255.0) ** 2.2 * 255).astype(np.uint8)
    out = auto_exposure(dark, target=0.45)
    mean_before = cv2.cvtColor(dark, cv2.COLOR_BGR2GRAY).mean() / 255
    mean_after = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY).mean() / 255
    assert mean_before < 0.1 and 0.3 < mean_after < 0.6
    bright = np.full((10, 10, 3), 230, np.uint8)
    np.testing.assert_array_equal(auto_exposure(bright), bright)  # gamma clipped at 1: unchanged


def test_clahe_raises_low_contrast_and_keeps_hue() -> None:
    clean = _scene()
    flat = (clean * 0.3 + 100).astype(np.uint8)
    out = clahe_luminance(flat)
    l_in = cv2.cvtColor(flat, cv2.COLOR_BGR2LAB)[..., 0].std()
    l_out = cv2.cvtColor(out, cv2.COLOR_BGR2LAB)[..., 0].std()
    assert l_out > 1.5 * l_in
    ab_in = cv2.cvtColor(flat, cv2.COLOR_BGR2LAB)[..., 1:].astype(int)
    ab_out = cv2.cvtColor(out, cv2.COLOR_BGR2LAB)[..., 1:].astype(int)
    assert np.abs(ab_in - ab_out).mean() < 3.0


def test_every_baseline_returns_a_new_array_of_the_input_shape() -> None:
    img = _scene(48, 64)
    before = img.copy()
    for name, fn in BASELINES.items():
        out = fn(img)
        assert out.shape == img.shape and out.dtype == np.uint8, name
        assert not np.shares_memory(out, img), name
    np.testing.assert_array_equal(img, before)  # inputs untouched
    np.testing.assert_array_equal(identity(img), img)


def test_haze_density_rises_with_the_airlight_a_haze_adds() -> None:
    clean = _scene()
    airlight = np.array([205.0, 200.0, 195.0])
    densities = []
    for t in (1.0, 0.8, 0.6, 0.4, 0.2):  # transmission: less of the scene, more airlight
        hazy = np.clip(clean * t + airlight * (1 - t), 0, 255).astype(np.uint8)
        densities.append(haze_density(hazy))
    assert densities[0] < 0.15  # every patch of the scene has a dark pixel (softened by the thumbnail)
    assert np.all(np.diff(densities) > 0.1)  # each step of haze is seen
    # linear in the transmission: t * (the scene's) + (1 - t) * the darkest channel of the airlight
    assert densities[-1] == pytest.approx(0.2 * densities[0] + 0.8 * 195 / 255, abs=0.02)
    assert (
        0.0
        <= haze_density(np.zeros((48, 64, 3), np.uint8))
        <= haze_density(np.full((48, 64, 3), 255, np.uint8))
    )
