"""Completion metrics on hand-checkable sets: CD_PCN (unsquared, halved sum of means), CD-L2, exact EMD
(against all permutations), F-score, Fidelity."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from perception_pkg.metrics.completion import all_metrics, chamfer_l2, chamfer_pcn, emd, fidelity, fscore


def test_chamfer_conventions_on_a_hand_example() -> None:
    a = np.array([[0.0, 0, 0], [1, 0, 0]])
    b = np.array([[0.0, 0, 0], [0, 2, 0], [1, 0.5, 0]])
    # a->b: 0, 0.5 (mean 0.25); b->a: 0, 2, 0.5 (mean 2.5 / 3)
    assert chamfer_pcn(a, b) == pytest.approx(0.5 * (0.25 + 2.5 / 3))
    assert chamfer_l2(a, b) == pytest.approx(0.5 * (0.25 / 2 + (4 + 0.25) / 3))
    assert chamfer_pcn(a, b) == chamfer_pcn(b, a)


def test_emd_is_the_best_bijection() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    brute = min(np.linalg.norm(a - b[list(p)], axis=1).mean() for p in itertools.permutations(range(6)))
    assert emd(a, b) == pytest.approx(brute)
    with pytest.raises(ValueError):
        emd(a, b[:5])


def test_fscore_precision_recall_and_fidelity() -> None:
    gt = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]])
    pred = np.array([[0.0, 0, 0.005], [1, 0, 0.005], [9, 9, 9]])
    m = all_metrics(pred, gt, d=0.01)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(0.5)
    assert m["fscore"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5)) == pytest.approx(fscore(pred, gt))
    assert fidelity(gt[:2], pred) == pytest.approx(0.005)
    assert fscore(pred + 100, gt) == 0.0
