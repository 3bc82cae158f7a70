"""Mass displacement voting (SPECS: Pose estimation): perfect fields, sign convention, noisy-OR bounds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_pkg.decoders.pose.geometry import grid_xy
from perception_pkg.decoders.pose.mass_displacement import displaced_positions, mass_displacement_decode, vote

H, W = 24, 32


def perfect_field(target: np.ndarray, h: int, w: int, d: float) -> tuple[np.ndarray, np.ndarray]:
    """``o = (target - x) / d`` for targets (N, K, 2) -> o_x, o_y (N, K, H, W)."""
    gx, gy = grid_xy(h, w)
    return (target[..., 0, None, None] - gx) / d, (target[..., 1, None, None] - gy) / d


def centroid(m: np.ndarray) -> np.ndarray:
    gx, gy = grid_xy(*m.shape[-2:])
    s = m.sum(axis=(-2, -1))
    return np.stack([(m * gx).sum(axis=(-2, -1)) / s, (m * gy).sum(axis=(-2, -1)) / s], axis=-1)


@settings(deadline=None, max_examples=40)
@given(seed=st.integers(0, 2**31 - 1), d=st.sampled_from([1.0, 2.5, 8.0]))
def test_perfect_field_bilinear_conserves_mass_and_centroid(seed: int, d: float) -> None:
    rng = np.random.default_rng(seed)
    target = rng.uniform([2, 2], [W - 3, H - 3], size=(3, 5, 2))
    c = rng.uniform(0, 1, size=(3, 5, H, W))
    o_x, o_y = perfect_field(target, H, W, d)
    m = vote(c, o_x, o_y, d=d, rule="additive", kernel="bilinear")
    np.testing.assert_allclose(m.sum(axis=(-2, -1)), c.sum(axis=(-2, -1)), rtol=1e-10)
    np.testing.assert_allclose(centroid(m), target, atol=1e-9)
    kp, score, _ = mass_displacement_decode(c, o_x, o_y, d=d, rule="additive")
    assert np.abs(kp - target).max() <= 0.5 + 1e-9
    np.testing.assert_allclose(score, m.reshape(3, 5, -1).max(-1))


def test_sign_convention_offsets_point_at_the_target() -> None:
    target = np.array([[[20.3, 7.6]]])
    c = np.zeros((1, 1, H, W))
    c[0, 0, 10:15, 8:13] = 1.0  # evidence around (10, 12), far from the target
    o_x, o_y = perfect_field(target, H, W, d=4.0)
    kp, _, _ = mass_displacement_decode(c, o_x, o_y, d=4.0, rule="additive")
    assert np.abs(kp - target).max() <= 0.5
    # positive offsets move mass toward +x / +y
    xp, yp = displaced_positions(np.full((1, 1), 0.5), np.full((1, 1), -0.25), d=2.0)
    np.testing.assert_array_equal([xp[0, 0], yp[0, 0]], [1.0, -0.5])
    # the opposite convention (o = x - target, the paper's Eq. 3 literal) sends the mass elsewhere
    kp_wrong, _, _ = mass_displacement_decode(c, -o_x, -o_y, d=4.0, rule="additive")
    assert np.abs(kp_wrong - target).max() > 5
    with pytest.raises(ValueError):
        vote(c, o_x, o_y, d=-4.0)


@settings(deadline=None, max_examples=30)
@given(seed=st.integers(0, 2**31 - 1), kernel=st.sampled_from(["bilinear", "gaussian"]))
def test_noisy_or_bounds(seed: int, kernel: str) -> None:
    rng = np.random.default_rng(seed)
    c = rng.uniform(0, 1, size=(2, 3, 12, 16)) ** 3
    o_x = rng.normal(0, 2, size=c.shape)
    o_y = rng.normal(0, 2, size=c.shape)
    m_add = vote(c, o_x, o_y, rule="additive", kernel=kernel, sigma=0.8)
    m_nor = vote(c, o_x, o_y, rule="noisy_or", kernel=kernel, sigma=0.8)
    assert np.all((m_nor >= 0) & (m_nor <= 1))
    diff = m_add - m_nor
    assert np.all(diff >= -1e-12)
    assert np.all(diff <= m_add**2 / 2 + 1e-12)


def test_noisy_or_certain_vote_and_nonfinite_offsets() -> None:
    c = np.zeros((1, 1, 5, 5))
    c[0, 0, 2, 2] = 1.0
    c[0, 0, 1, 1] = 1.0
    zero = np.zeros_like(c)
    m = vote(c, zero, zero, rule="noisy_or")
    assert m[0, 0, 2, 2] == 1.0 and m[0, 0, 1, 1] == 1.0 and np.isfinite(m).all()
    bad = zero.copy()
    bad[0, 0, 2, 2] = np.nan
    m = vote(c, bad, zero, rule="additive")
    assert m[0, 0, 2, 2] == 0.0 and m[0, 0, 1, 1] == 1.0 and m.sum() == 1.0
    with pytest.raises(ValueError):
        vote(c, zero, zero, rule="max")
    with pytest.raises(ValueError):
        vote(c, zero, zero, kernel="box")
    with pytest.raises(ValueError):
        vote(c, zero[0], zero)


def test_gaussian_kernel_perfect_field() -> None:
    rng = np.random.default_rng(5)
    target = rng.uniform([8, 8], [W - 9, H - 9], size=(4, 2, 2))
    c = np.zeros((4, 2, H, W))
    c[..., 10:14, 12:16] = 0.05
    o_x, o_y = perfect_field(target, H, W, 1.0)
    for rule in ("additive", "noisy_or"):
        kp, _score, m = mass_displacement_decode(c, o_x, o_y, rule=rule, kernel="gaussian", sigma=1.5)
        assert np.abs(kp - target).max() <= 0.5 + 1e-9
        np.testing.assert_allclose(centroid(m), target, atol=0.01)
    # additive with K(0) = 1: total mass = sum(c) * (sampled Gaussian mass ~ 2 pi sigma^2)
    m = vote(c, o_x, o_y, kernel="gaussian", sigma=1.5)
    np.testing.assert_allclose(m.sum(axis=(-2, -1)) / c.sum(axis=(-2, -1)), 2 * np.pi * 1.5**2, rtol=0.01)


def test_batch_equals_per_item() -> None:
    rng = np.random.default_rng(9)
    c = rng.uniform(0, 1, size=(3, 4, 10, 12))
    o_x, o_y = rng.normal(0, 1.5, size=(2, *c.shape))
    kp, _score, m = mass_displacement_decode(c, o_x, o_y)
    for i in range(3):
        kp_i, _score_i, m_i = mass_displacement_decode(c[i : i + 1], o_x[i : i + 1], o_y[i : i + 1])
        np.testing.assert_array_equal(m[i : i + 1], m_i)
        np.testing.assert_array_equal(kp[i : i + 1], kp_i)
