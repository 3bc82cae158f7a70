"""Weather degradations: physical fog, night model, determinism and pixel alignment."""

from __future__ import annotations

import numpy as np
import pytest

from perception_pkg.sim.sensors import CameraSpec
from perception_pkg.sim.weather import (
    FOG_AIRLIGHT,
    FOG_BETA,
    NIGHT_GAIN,
    NIGHT_GAMMA,
    WEATHER_KINDS,
    degrade,
    fog,
    ray_distance,
)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    # smooth gradients plus texture, 64x96, like a small camera frame
    y, x = np.mgrid[0:64, 0:96]
    base = np.stack([x / 95, y / 63, 0.5 + 0.5 * np.sin(x / 7)], axis=-1)
    return (np.clip(base * 0.8 + 0.2 * rng.random((64, 96, 3)), 0, 1) * 255).astype(np.uint8)


def test_fog_follows_koschmieder(image):
    rng = np.random.default_rng(1)
    distance = rng.uniform(1.0, 200.0, image.shape[:2]).astype(np.float32)
    distance[:5] = np.inf  # sky rows
    for severity in range(1, 6):
        out = degrade(image, "fog", severity, distance=distance)
        beta = FOG_BETA[severity - 1]
        t = np.exp(-beta * distance)[..., None]
        expected = (image / 255.0) * t + FOG_AIRLIGHT * (1 - t)
        # exact up to the final rounding to 8 bits
        assert np.abs(out / 255.0 - expected).max() <= 0.5 / 255 + 1e-6
        assert np.array_equal(out[:5], np.broadcast_to(np.round(FOG_AIRLIGHT * 255), out[:5].shape))
    # visibility 3 / beta: at that distance 5% of the contrast is left
    assert np.exp(-FOG_BETA[2] * 3 / FOG_BETA[2]) == pytest.approx(0.0498, abs=1e-4)
    f = fog(np.zeros((1, 1, 3), np.float32), np.array([[0.0]]), 0.1)
    assert np.allclose(f, 0.0)  # no distance, no fog


def test_ray_distance_from_depth():
    cam = CameraSpec(width=8, height=6, hfov_deg=90.0)
    depth = np.full((6, 8), 2.0, np.float32)
    d = ray_distance(depth, cam)
    xn = (np.arange(8) - cam.cx) / cam.fx
    yn = (np.arange(6) - cam.cy) / cam.fy
    assert np.allclose(d, 2.0 * np.sqrt(1 + xn[None] ** 2 + yn[:, None] ** 2))


def test_night_darkens_by_gain_and_gamma_with_zero_mean_shot_noise():
    flat = np.full((200, 200, 3), 200, np.uint8)
    for severity in (1, 3, 5):
        out = degrade(flat, "night", severity, seed=4) / 255.0
        expected = NIGHT_GAIN[severity - 1] * (200 / 255) ** NIGHT_GAMMA[severity - 1]
        assert out.mean() == pytest.approx(expected, abs=0.01)
        assert out.std() > 0  # photon noise is there


@pytest.mark.parametrize("kind", WEATHER_KINDS)
def test_degradations_are_seeded_and_pixel_aligned(image, kind):
    distance = np.full(image.shape[:2], 30.0, np.float32)
    a = degrade(image, kind, 3, distance=distance, seed=7)
    b = degrade(image, kind, 3, distance=distance, seed=7)
    assert a.shape == image.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, image)
    if kind != "fog":  # fog is deterministic by nature
        assert not np.array_equal(a, degrade(image, kind, 3, distance=distance, seed=8))
    # stronger severity moves further from the clean image
    weak = degrade(image, kind, 1, distance=distance, seed=7).astype(float)
    strong = degrade(image, kind, 5, distance=distance, seed=7).astype(float)
    assert np.abs(strong - image).mean() > np.abs(weak - image).mean()


def test_imagecorruptions_leaves_global_random_state_alone(image):
    np.random.seed(123)  # noqa: NPY002 - checking that the legacy global state survives
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    degrade(image, "snow", 2, seed=1)
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002


def test_bad_arguments_are_refused(image):
    with pytest.raises(ValueError, match="unknown"):
        degrade(image, "hail", 1)
    with pytest.raises(ValueError, match="severity"):
        degrade(image, "rain", 6)
    with pytest.raises(ValueError, match="distance"):
        degrade(image, "fog", 1)
