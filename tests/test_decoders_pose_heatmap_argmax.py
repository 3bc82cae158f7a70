"""Argmax pose decoding, RSN post-processing and the heatmap geometry (SPECS: Pose estimation)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.pose_decoders import gaussian_maps
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_pkg.decoders.pose.geometry import (
    crop_to_heatmap,
    heatmap_to_crop,
    heatmap_to_image,
    image_to_heatmap,
    invert_affine,
    stride_from_shapes,
)
from perception_pkg.decoders.pose.heatmap_argmax import (
    argmax_decode,
    flip_average,
    flip_back,
    gaussian_blur_heatmaps,
    hflip_keypoints,
    pose_score,
    rsn_decode,
)
from perception_pkg.pose.coco17 import FLIP_PAIRS

H, W = 32, 32


def _random_centres(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(8.0, 24.0, size=(n, 1, 2))  # away from borders


def test_argmax_quantisation_error_and_rms() -> None:
    mu = _random_centres(4000)
    hm = gaussian_maps(mu, H, W, sigma=2.0).astype(np.float32)
    kp, score = argmax_decode(hm, refine="none")
    err = kp - mu
    assert kp.shape == (4000, 1, 2) and kp.dtype == np.float64 and score.shape == (4000, 1)
    assert np.abs(err).max() <= 0.5 + 1e-12
    rms = np.sqrt((err**2).mean(axis=(0, 1)))
    # uniform error on [-0.5, 0.5]: RMS 1/sqrt(12) = 0.2887 per axis (4000 samples: +-0.002)
    np.testing.assert_allclose(rms, 1 / np.sqrt(12), atol=0.01)
    assert np.all(score <= 1.0) and np.all(score > np.exp(-0.25))  # peak within 0.71 cell of the centre


def test_quarter_shift_halves_the_error() -> None:
    mu = _random_centres(4000, seed=1)
    hm = gaussian_maps(mu, H, W, sigma=2.0).astype(np.float32)
    err_none = argmax_decode(hm, refine="none")[0] - mu
    err_q = argmax_decode(hm, refine="quarter")[0] - mu
    rms_none = np.sqrt((err_none**2).mean(axis=(0, 1)))
    rms_q = np.sqrt((err_q**2).mean(axis=(0, 1)))
    assert np.all(rms_q < rms_none)
    # the shift maps the uniform [-0.5, 0.5] error onto [-0.25, 0.25]: RMS 1/sqrt(48) = 0.144
    np.testing.assert_allclose(rms_q, 1 / np.sqrt(48), atol=0.01)
    assert np.abs(err_q).max() <= 0.25 + 1e-6


def test_quarter_shift_not_applied_on_border_and_bad_refine() -> None:
    hm = np.zeros((1, 2, 5, 5), np.float32)
    hm[0, 0, 0, 0] = 1.0
    hm[0, 0, 1, 0] = 0.5  # higher neighbour below; x on border
    hm[0, 1, 2, 2] = 1.0
    hm[0, 1, 2, 3] = 0.5
    kp, score = argmax_decode(hm)
    np.testing.assert_array_equal(kp[0, 0], [0.0, 0.0])  # both axes on the border: no shift
    np.testing.assert_array_equal(kp[0, 1], [2.25, 2.0])
    np.testing.assert_array_equal(score[0], [1.0, 1.0])
    with pytest.raises(ValueError):
        argmax_decode(hm, refine="dark")
    with pytest.raises(ValueError):
        argmax_decode(hm[0])


def _symmetric_person(w: int) -> np.ndarray:
    """COCO-17 keypoints symmetric about the crop's vertical axis x = (W - 1) / 2 (heatmap frame)."""
    cx = (w - 1) / 2
    kp = np.zeros((17, 2))
    kp[0] = [cx, 4.3]
    for i, (a, b) in enumerate(FLIP_PAIRS):
        dx, y = 1.7 + 0.9 * i, 5.2 + 2.9 * i
        kp[a] = [cx + dx, y]  # left keypoints appear on the image's right for a person facing us
        kp[b] = [cx - dx, y]
    return kp[None]


def test_flip_average_symmetric_person_decodes_the_same() -> None:
    kp = _symmetric_person(W)
    hm = gaussian_maps(kp, H, W, sigma=1.5).astype(np.float32)
    # the flipped crop shows the mirror image; the network (here: ideal) labels channels by body side
    hm_f = gaussian_maps(hflip_keypoints(kp, W, FLIP_PAIRS), H, W, sigma=1.5).astype(np.float32)
    np.testing.assert_allclose(flip_back(hm_f, FLIP_PAIRS), hm, atol=1e-6)
    avg = flip_average(hm, hm_f, FLIP_PAIRS)
    np.testing.assert_array_equal(argmax_decode(avg)[0], argmax_decode(hm)[0])
    np.testing.assert_array_equal(rsn_decode(hm, hm_f)[0], rsn_decode(hm)[0])


@settings(deadline=None, max_examples=25)
@given(st.integers(0, 2**31 - 1))
def test_flip_back_inverts_any_person(seed: int) -> None:
    rng = np.random.default_rng(seed)
    kp = rng.uniform(2, [W - 3, H - 3], size=(3, 17, 2))
    hm = gaussian_maps(kp, H, W, sigma=1.5)
    hm_f = gaussian_maps(hflip_keypoints(kp, W, FLIP_PAIRS), H, W, sigma=1.5)
    np.testing.assert_allclose(flip_back(hm_f, FLIP_PAIRS), hm, atol=1e-12)
    # and flip_back is an involution
    np.testing.assert_array_equal(flip_back(flip_back(hm, FLIP_PAIRS), FLIP_PAIRS), hm)


def test_flip_pairs_validated_and_shift() -> None:
    hm = np.arange(2 * 3 * 4, dtype=np.float32).reshape(1, 2, 3, 4)
    with pytest.raises(ValueError):
        flip_back(hm, [(0, 2)])
    with pytest.raises(ValueError):
        flip_back(hm, [(0, 0)])
    shifted = flip_back(hm, [(0, 1)], shift=True)
    plain = flip_back(hm, [(0, 1)])
    np.testing.assert_array_equal(shifted[..., 1:], plain[..., :-1])


def test_blur_keeps_peak_location_and_value() -> None:
    mu = _random_centres(50, seed=3)
    hm = gaussian_maps(mu, H, W, sigma=2.0).astype(np.float32)
    noisy = hm + np.random.default_rng(0).normal(0, 0.02, hm.shape).astype(np.float32)
    blurred = gaussian_blur_heatmaps(noisy, 5)
    assert blurred.dtype == np.float32 and blurred.shape == hm.shape
    np.testing.assert_allclose(blurred.reshape(50, -1).max(-1), noisy.reshape(50, -1).max(-1), rtol=1e-6)
    # blurring the noise makes the argmax closer to the truth on average
    e_noisy = np.abs(argmax_decode(noisy, "none")[0] - mu).mean()
    e_blur = np.abs(argmax_decode(blurred, "none")[0] - mu).mean()
    assert e_blur <= e_noisy
    # more than 128 channels go through cv2 in chunks, same result per channel
    many = np.repeat(hm[:1], 600, axis=1)
    out = gaussian_blur_heatmaps(many, 5)
    np.testing.assert_allclose(out[0, 599], out[0, 0])
    with pytest.raises(ValueError):
        gaussian_blur_heatmaps(hm, 4)


def test_pose_score() -> None:
    np.testing.assert_allclose(pose_score([[0.5, 1.0], [0.2, 0.4]], [0.8, 0.5]), [0.6, 0.15])


# ---- geometry ---------------------------------------------------------------------------------------


def test_heatmap_crop_mapping_values_and_inverse() -> None:
    u = np.array([[0.0, 0.0], [47.0, 63.0], [10.25, 3.5]])
    np.testing.assert_allclose(heatmap_to_crop(u, 4)[:2], [[2.0, 2.0], [190.0, 254.0]])
    np.testing.assert_allclose(heatmap_to_crop(u, 4, "legacy")[:2], [[0.5, 0.5], [188.5, 252.5]])
    s = stride_from_shapes((256, 192), (64, 48))
    np.testing.assert_array_equal(s, [4.0, 4.0])
    for alignment in ("cell", "legacy"):
        np.testing.assert_allclose(
            crop_to_heatmap(heatmap_to_crop(u, (4, 3), alignment), (4, 3), alignment), u
        )
    with pytest.raises(ValueError):
        heatmap_to_crop(u, 0)
    with pytest.raises(ValueError):
        heatmap_to_crop(u, 4, "corner")


def test_cell_alignment_flip_is_exact() -> None:
    # flipping a crop of width W s maps x -> W s - x; under the cell alignment that is u -> W - 1 - u
    u = np.random.default_rng(0).uniform(0, 47, size=(20, 2))
    flipped_u = u.copy()
    flipped_u[:, 0] = 47 - u[:, 0]
    np.testing.assert_allclose(heatmap_to_crop(flipped_u, 4)[:, 0], 192 - heatmap_to_crop(u, 4)[:, 0])


def test_heatmap_to_image_is_exact_inverse_of_the_crop() -> None:
    rng = np.random.default_rng(2)
    n = 4
    ang = rng.uniform(-0.5, 0.5, n)
    sc = rng.uniform(0.3, 2.0, n)
    m = np.zeros((n, 2, 3))
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = (
        sc * np.cos(ang),
        -sc * np.sin(ang),
        sc * np.sin(ang),
        sc * np.cos(ang),
    )
    m[:, :, 2] = rng.uniform(-100, 100, (n, 2))
    u = rng.uniform(0, 48, size=(n, 17, 2))
    img = heatmap_to_image(u, 4, m)
    np.testing.assert_allclose(image_to_heatmap(img, 4, m), u, atol=1e-9)
    # against the stack's AffineTransform when available
    affine = pytest.importorskip("perception_pkg.preprocess.affine")
    t = affine.AffineTransform(m)
    np.testing.assert_allclose(t.apply_points(img), heatmap_to_crop(u, 4), atol=1e-9)
    np.testing.assert_allclose(invert_affine(t), t.inverse().matrix, atol=1e-12)
    # one unbatched map for (K, 2) points
    np.testing.assert_allclose(image_to_heatmap(heatmap_to_image(u[0], 4, m[0]), 4, m[0]), u[0], atol=1e-9)
