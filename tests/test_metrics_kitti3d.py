"""KITTI-style AP3D / AP_BEV with R40 interpolation: perfect, hand-computed, and the BEV/3D difference."""

from __future__ import annotations

import numpy as np
import pytest

from perception_pkg.metrics.kitti3d import ap_r40, kitti_ap

CAR = np.array([0.0, 1.6, 20.0, 1.53, 1.62, 3.89, 0.3])


def car(dx: float = 0.0, dy: float = 0.0, dz: float = 0.0) -> np.ndarray:
    return CAR + np.array([dx, dy, dz, 0, 0, 0, 0])


def test_perfect_detections_give_one() -> None:
    gts = [np.stack([car(), car(dx=5.0)]), np.stack([car(dz=15.0)])]
    scores = [np.array([0.9, 0.8]), np.array([0.7])]
    r = kitti_ap(gts, gts, scores)
    assert r == {"AP3D@0.5": 1.0, "AP3D@0.7": 1.0, "APBEV@0.5": 1.0, "APBEV@0.7": 1.0}


def test_tiny_case_by_hand() -> None:
    # 2 GT; detections by score: TP (0.9), FP far away (0.8), TP (0.7).
    # PR points: (r=0.5, p=1), (0.5, 0.5), (1, 2/3). Interpolated precision: 1 at r = 1/40..20/40,
    # 2/3 at 21/40..40/40, so AP = (20 * 1 + 20 * 2/3) / 40 = 5/6.
    gts = [np.stack([car(), car(dx=6.0)])]
    dets = [np.stack([car(), car(dx=-30.0), car(dx=6.0)])]
    r = kitti_ap(gts, dets, [np.array([0.9, 0.8, 0.7])])
    assert r["AP3D@0.7"] == pytest.approx(5 / 6)
    assert r["APBEV@0.5"] == pytest.approx(5 / 6)
    # a missed GT halves recall: only r <= 0.5 positions are reached -> AP = 20/40 * 1
    assert kitti_ap(gts, [dets[0][:1]], [np.array([0.9])])["AP3D@0.5"] == pytest.approx(0.5)
    # R40 has no recall-0 point: one GT of 2 found at precision 1 gives 0.5, not R11's 6/11
    assert ap_r40(np.array([1.0]), np.array([True]), 2)[0] == pytest.approx(0.5)


def test_bev_ignores_height_and_threshold_matters() -> None:
    gts = [car()[None]]
    # lifted by 0.8 m: same footprint (BEV IoU 1), 3D IoU = 0.73 / 2.33 = 0.31
    r = kitti_ap(gts, [car(dy=-0.8)[None]], [np.array([0.9])])
    assert r["APBEV@0.7"] == 1.0 and r["AP3D@0.5"] == 0.0
    # 1 m along the heading (length 3.89): BEV IoU 2.89 / 4.89 = 0.59, between 0.5 and 0.7
    shifted = car(dx=np.cos(0.3) * 1.0, dz=-np.sin(0.3) * 1.0)[None]
    r = kitti_ap(gts, [shifted], [np.array([0.9])])
    assert r["APBEV@0.5"] == 1.0 and r["APBEV@0.7"] == 0.0


def test_duplicates_and_empty_frames() -> None:
    gts = [car()[None], np.zeros((0, 7))]
    dets = [np.stack([car(), car(dx=0.05)]), car(dx=3.0)[None]]
    r = kitti_ap(gts, dets, [np.array([0.9, 0.85]), np.array([0.5])])
    # the duplicate and the detection in an empty frame are false positives after the TP: AP stays 1
    assert r["AP3D@0.7"] == 1.0
    # the empty-frame detection scored above the TP costs precision: TP at rank 2 -> 1/2 everywhere
    r = kitti_ap(gts, dets, [np.array([0.6, 0.3]), np.array([0.95])])
    assert r["AP3D@0.7"] == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="one entry per frame"):
        kitti_ap(gts, dets[:1], [np.array([0.9])])
