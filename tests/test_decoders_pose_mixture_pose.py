"""Mixture-density offsets (SPECS: Pose estimation): max-alpha decoding, sigma, NLL with LogSumExp."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_pkg.decoders.pose.mixture_pose import (
    LOG_2PI,
    find_centres,
    mixture_decode,
    mixture_nll,
    sigma_from_raw,
)

K, M, H, W = 17, 2, 24, 32


def _scene(rng: np.random.Generator, centres: list[tuple[int, int, int]], b: int = 2):
    """Heads for people at (image, row, col): component 0 has alpha 0.7, component 1 alpha 0.3."""
    centre = np.zeros((b, 1, H, W), np.float32)
    offsets = rng.normal(0, 0.5, size=(b, M, 2 * K, H, W)).astype(np.float32)
    sigma = np.full((b, M, H, W), 2.0, np.float32)
    alpha = np.zeros((b, M, H, W), np.float32)
    truth = {}
    for i, r, c in centres:
        centre[i, 0, r, c] = 0.9
        o1 = rng.uniform(-6, 6, size=2 * K).astype(np.float32)
        o2 = o1 + 5.0  # a separated second hypothesis
        offsets[i, 0, :, r, c], offsets[i, 1, :, r, c] = o1, o2
        sigma[i, :, r, c] = (1.5, 4.0)
        alpha[i, :, r, c] = np.log([0.7, 0.3])
        p = np.array([c, r], np.float64)
        truth[(i, r, c)] = (
            p + o1.astype(np.float64).reshape(K, 2),
            p + o2.astype(np.float64).reshape(K, 2),
        )
    return centre, offsets, sigma, alpha, truth


def test_max_alpha_component_returns_mu1_exactly() -> None:
    rng = np.random.default_rng(0)
    people = [(0, 5, 7), (0, 15, 25), (1, 12, 12)]
    centre, offsets, sigma, alpha, truth = _scene(rng, people)
    res = mixture_decode(centre, offsets, sigma, alpha, threshold=0.5)
    assert len(res.image_index) == 3 and res.keypoints.shape == (3, K, 2) and res.sigma.shape == (3, K)
    for n in range(3):
        key = (int(res.image_index[n]), int(res.centres[n, 1]), int(res.centres[n, 0]))
        mu1, mu2 = truth[key]
        np.testing.assert_array_equal(res.keypoints[n], mu1)  # exactly p + O_1
        mean = 0.7 * mu1 + 0.3 * mu2
        assert np.abs(res.keypoints[n] - mean).min() > 1.0  # not the mixture mean
        assert res.component[n] == 0
        np.testing.assert_allclose(res.alpha[n], [0.7, 0.3])
        np.testing.assert_array_equal(res.sigma[n], np.full(K, 1.5))
        assert res.centre_scores[n] == pytest.approx(0.9)
    np.testing.assert_array_equal(np.sort(res.image_index), [0, 0, 1])
    # swap the weights: the second hypothesis wins
    res2 = mixture_decode(centre, offsets, sigma, alpha[:, ::-1], threshold=0.5)
    assert np.all(res2.component == 1) and np.all(res2.sigma == 4.0)
    # per-keypoint scales multiply sigma (tighter for small COCO factors)
    scales = np.linspace(0.5, 1.5, K)
    res3 = mixture_decode(centre, offsets, sigma, alpha, threshold=0.5, keypoint_scales=scales)
    np.testing.assert_allclose(res3.sigma, 1.5 * np.broadcast_to(scales, (3, K)))


def test_find_centres_nms_threshold_and_limit() -> None:
    hm = np.zeros((2, 8, 8))
    hm[0, 2, 2], hm[0, 2, 3] = 0.8, 0.7  # neighbours: only the higher survives NMS
    hm[0, 6, 6] = 0.5
    hm[1, 4, 4] = 0.2  # below threshold
    img, rows, cols, score = find_centres(hm, max_people=5, threshold=0.3)
    np.testing.assert_array_equal(img, [0, 0])
    np.testing.assert_array_equal(np.stack([rows, cols], -1), [[2, 2], [6, 6]])
    np.testing.assert_allclose(score, [0.8, 0.5])
    assert len(find_centres(hm, max_people=1, threshold=0.3)[0]) == 1
    assert len(find_centres(np.zeros((3, 4, 4)), threshold=0.3)[0]) == 0
    with pytest.raises(ValueError):
        find_centres(hm, nms_kernel=2)


@settings(deadline=None, max_examples=40)
@given(seed=st.integers(0, 2**31 - 1), sigma=st.floats(0.5, 50.0))
def test_nll_single_component_closed_form(seed: int, sigma: float) -> None:
    rng = np.random.default_rng(seed)
    g = rng.normal(0, 20, size=(5, 2 * K))
    o = rng.normal(0, 20, size=(5, 1, 2 * K))
    c = 2 * K
    expected = c * np.log(sigma) + ((g - o[:, 0]) ** 2).sum(-1) / (2 * sigma**2) + c / 2 * LOG_2PI
    nll = mixture_nll(g, o, np.full((5, 1), sigma), rng.normal(size=(5, 1)))
    np.testing.assert_allclose(nll, expected, rtol=1e-12)


def test_nll_finite_where_naive_exp_underflows() -> None:
    g = np.zeros((1, 2 * K))
    o = np.full((1, 2, 2 * K), 300.0)  # 34 coordinates, each 300 sigma away
    o[0, 1] = -250.0
    sig = np.ones((1, 2))
    a = np.log([[0.7, 0.3]])
    with np.errstate(divide="ignore", under="ignore"):
        sq = ((g[:, None] - o) ** 2).sum(-1)
        dens = np.exp(-sq / 2) / (2 * np.pi) ** K
        naive = -np.log((np.exp(a) * dens).sum(-1))
    assert np.isinf(naive).all()  # the naive formula gives up
    nll = mixture_nll(g, o, sig, a)
    assert np.isfinite(nll).all()
    # dominated by the closer component (0.3 weight, 250 sigma): its own log-density
    expected = -np.log(0.3) + 2 * K * 250.0**2 / 2 + K * LOG_2PI
    np.testing.assert_allclose(nll, expected, rtol=1e-12)
    # where naive works, both agree
    o_small = np.random.default_rng(1).normal(0, 1, size=(4, 2, 2 * K))
    g_small = np.zeros((4, 2 * K))
    s_small = np.array([[1.0, 2.0]] * 4)
    a_small = np.log([[0.6, 0.4]] * 4)
    sq = ((g_small[:, None] - o_small) ** 2).sum(-1)
    dens = np.exp(-sq / (2 * s_small**2)) / ((2 * np.pi) ** K * s_small ** (2 * K))
    np.testing.assert_allclose(
        mixture_nll(g_small, o_small, s_small, a_small), -np.log((np.exp(a_small) * dens).sum(-1)), rtol=1e-10
    )


def test_nll_visibility_mask_drops_keypoints() -> None:
    rng = np.random.default_rng(3)
    g = rng.normal(size=(2, 2 * K))
    o = rng.normal(size=(2, 1, 2 * K))
    vis = np.zeros((2, K), bool)
    vis[:, :5] = True
    full_subset = mixture_nll(g[:, :10], o[..., :10], np.full((2, 1), 3.0), np.zeros((2, 1)))
    masked = mixture_nll(g, o, np.full((2, 1), 3.0), np.zeros((2, 1)), visible=vis)
    np.testing.assert_allclose(masked, full_subset, rtol=1e-12)
    with pytest.raises(ValueError):
        mixture_nll(g, o, np.zeros((2, 1)), np.zeros((2, 1)))


def test_sigma_parametrisation_has_a_floor() -> None:
    raw = np.array([-1e6, -50.0, -1.0, 0.0, 1.0, 100.0])
    s = sigma_from_raw(raw, minimum=10.0)
    assert np.all(s >= 10.0) and np.all(np.isfinite(s))
    assert np.all(np.diff(s) >= 0)  # monotone, saturating at the floor
    np.testing.assert_allclose(s[[0, 3, 4, 5]], [10.0, 11.0, 12.0, 111.0])
    np.testing.assert_allclose(sigma_from_raw(-1.0, 2.0), 2.0 + np.exp(-1.0))
