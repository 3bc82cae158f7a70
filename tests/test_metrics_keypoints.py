"""Keypoint metrics: OKS by hand, pycocotools OKS AP of perfect and known-OKS predictions (and that the
wrapper's numbers are COCOeval.summarize's), greedy OKS matching, PCK at set alphas, AUC of known curves."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from perception_pkg.metrics.keypoints import (
    ALPHAS,
    coco_keypoint_ap,
    matched_distances,
    oks,
    pck_auc,
    pck_curve,
    pck_per_keypoint,
)
from perception_pkg.pose.coco17 import KEYPOINT_NAMES, OKS_SIGMAS


def _ann(i: int, img: int, xy: np.ndarray, box: list[float], v: int | np.ndarray = 2) -> dict:
    vis = np.broadcast_to(np.asarray(v), (17,))
    kps = np.concatenate([xy, vis[:, None]], axis=1).reshape(-1).tolist()
    return {"id": i, "image_id": img, "category_id": 1, "iscrowd": 0, "bbox": box,
            "area": box[2] * box[3], "keypoints": kps, "num_keypoints": int((vis > 0).sum())}  # fmt: skip


def _result(img: int, xy: np.ndarray, score: float) -> dict:
    kps = np.concatenate([xy, np.ones((17, 1))], axis=1).reshape(-1).tolist()
    return {"image_id": img, "category_id": 1, "keypoints": kps, "score": score}


def _gt(images: list[int], anns: list[dict]) -> dict:
    return {
        "images": [{"id": i, "width": 640, "height": 480} for i in images],
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "keypoints": list(KEYPOINT_NAMES)}],
    }


XY = np.random.default_rng(2).uniform(10, 90, (17, 2))
NOSE_ONLY = np.r_[2, np.zeros(16, int)]  # visibility with only the nose labelled


def test_oks_is_one_at_the_ground_truth_and_falls_with_distance() -> None:
    gt_xy, vis, area = XY[None], np.full((1, 17), 2), np.array([5000.0])
    assert oks(XY[None], gt_xy, vis, area)[0, 0] == pytest.approx(1.0)
    assert oks(XY[None] + 5, gt_xy, vis, area)[0, 0] < oks(XY[None] + 1, gt_xy, vis, area)[0, 0] < 1


def test_oks_by_hand() -> None:
    # nose only (k = 2 * 0.026), 1 px off, area 100: exp(-1 / (2 * 100 * 0.052^2))
    pred = XY.copy()
    pred[0] += (0.6, 0.8)  # |d| = 1
    assert oks(pred[None], XY[None], NOSE_ONLY[None], np.array([100.0]))[0, 0] == pytest.approx(
        np.exp(-1.0 / (2 * 100 * 0.052**2))
    )
    assert np.exp(-1.0 / (2 * 100 * 0.052**2)) == pytest.approx(0.15738, abs=1e-5)
    # two labelled keypoints (nose at 0 px, left shoulder 2 px off along x): the mean of the two terms
    vis = np.zeros(17, int)
    vis[[0, 5]] = 2
    pred = XY.copy()
    pred[5, 0] += 2.0
    want = (1.0 + np.exp(-4.0 / (2 * 400 * (2 * OKS_SIGMAS[5]) ** 2))) / 2
    assert oks(pred[None], XY[None], vis[None], np.array([400.0]))[0, 0] == pytest.approx(want)
    # nothing labelled: 0 (and a (P, G) matrix)
    got = oks(np.stack([XY, XY]), np.stack([XY, XY, XY]), np.zeros((3, 17)), np.full(3, 100.0))
    assert got.shape == (2, 3) and np.all(got == 0)


def test_pycocotools_ap_is_one_for_perfect_predictions() -> None:
    gt = {
        "images": [{"id": 1, "width": 100, "height": 100}],
        "annotations": [_ann(1, 1, XY, [5.0, 5.0, 90.0, 90.0])],
        "categories": [{"id": 1, "name": "person"}],
    }
    res = [
        {
            "image_id": 1,
            "category_id": 1,
            "keypoints": _ann(0, 1, XY, [0, 0, 1, 1])["keypoints"],
            "score": 0.9,
        }
    ]
    ap = coco_keypoint_ap(gt, res)
    assert ap["AP"] == pytest.approx(1.0) and ap["AP50"] == pytest.approx(1.0)
    assert coco_keypoint_ap(gt, [])["AP"] == 0.0


def test_ap_of_a_prediction_of_known_oks() -> None:
    """One person, nose labelled, OKS 0.62: matched at OKS thresholds .50, .55, .60 of ten -> AP 0.3."""
    area, target = 100.0 * 100.0, 0.62
    d = np.sqrt(-np.log(target) * 2 * area * (2 * OKS_SIGMAS[0]) ** 2)  # 5.08 px
    pred = XY.copy()
    pred[0, 0] += d
    assert oks(pred[None], XY[None], NOSE_ONLY[None], np.array([area]))[0, 0] == pytest.approx(target)
    gt = _gt([1], [_ann(1, 1, XY, [0.0, 0.0, 100.0, 100.0], NOSE_ONLY)])
    ap = coco_keypoint_ap(gt, [_result(1, pred, 0.9)])
    assert list(ap) == ["AP", "AP50", "AP75", "AP_medium", "AP_large", "AR", "AR50", "AR75", "AR_medium",
                        "AR_large"]  # fmt: skip
    assert ap["AP"] == pytest.approx(0.3) and ap["AR"] == pytest.approx(0.3)
    assert ap["AP50"] == pytest.approx(1.0) and ap["AR50"] == 1.0 and ap["AP75"] == ap["AR75"] == 0.0
    assert ap["AP_large"] == pytest.approx(0.3)  # area 100^2 >= 96^2
    assert ap["AP_medium"] == -1.0 and ap["AR_medium"] == -1.0  # no medium person: nothing to score
    # own area ranges: one "small" range that holds the person, one that does not
    ap = coco_keypoint_ap(gt, [_result(1, pred, 0.9)], area_ranges={"in": (0.0, 2e4), "out": (2e4, 1e10)})
    assert ap["AP_in"] == pytest.approx(0.3) and ap["AP_out"] == -1.0


def test_defaults_give_exactly_cocoeval_summarize() -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(5)
    anns, results = [], []
    for img in (1, 2, 3):
        for _ in range(3):
            x0, y0 = rng.uniform(0, 300, 2)
            w, h = rng.uniform(20, 160, 2)
            xy = np.c_[rng.uniform(x0, x0 + w, 17), rng.uniform(y0, y0 + h, 17)]
            anns.append(_ann(len(anns) + 1, img, xy, [x0, y0, w, h], rng.integers(0, 3, 17)))
            results.append(_result(img, xy + rng.normal(0, 0.05 * h, (17, 2)), float(rng.uniform())))
    gt = _gt([1, 2, 3], anns)
    got = coco_keypoint_ap(gt, [dict(r) for r in results])
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes([dict(r) for r in results]), iouType="keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert list(got.values()) == [float(v) for v in ev.stats]
    assert 0.0 < got["AP"] < 1.0


def test_greedy_oks_matching_by_score() -> None:
    gt_xy = np.stack([XY, XY + 200.0])
    vis, area = np.full((2, 17), 2), np.full(2, 5000.0)
    near0, near1 = XY + 1.0, XY + 200.0 + 2.0
    # the higher-scored prediction takes the person it overlaps; the second person is nobody's
    dist = matched_distances(np.stack([near1, near0]), np.array([0.2, 0.9]), gt_xy, vis, area)
    np.testing.assert_allclose(dist[0], np.sqrt(2.0))
    np.testing.assert_allclose(dist[1], np.sqrt(8.0))
    # two predictions on person 0: the better-scored one wins it, the other finds no free person
    dist = matched_distances(np.stack([near0, XY + 3.0]), np.array([0.1, 0.9]), gt_xy[:1], vis[:1], area[:1])
    np.testing.assert_allclose(dist[0], np.sqrt(18.0))
    assert np.all(np.isinf(matched_distances(np.zeros((0, 17, 2)), np.zeros(0), gt_xy, vis, area)))


def test_pck_at_alphas_on_a_constructed_case() -> None:
    # one person, normaliser 100 px (box 50 x 100): distances 0, 4, 10, 25 px and a miss; the sixth
    # keypoint (2 px off) is unlabelled and does not count; the rest are unlabelled too
    dist = np.full((1, 17), np.inf)
    dist[0, :6] = [0.0, 4.0, 10.0, 25.0, np.inf, 2.0]
    vis = np.zeros((1, 17), bool)
    vis[0, :5] = True
    alphas = np.array([0.0, 0.05, 0.1, 0.2, 0.5])
    np.testing.assert_allclose(pck_curve(dist, np.array([100.0]), vis, alphas), [0.2, 0.4, 0.6, 0.6, 0.8])
    per = pck_per_keypoint(dist, np.array([100.0]), vis, alphas)
    assert per.shape == (5, 17)
    np.testing.assert_array_equal(per[:, 2], [0, 0, 1, 1, 1])  # 10 px = 0.1 L: a hit at alpha 0.1
    np.testing.assert_array_equal(per[:, 4], 0)  # the miss
    np.testing.assert_array_equal(per[:, 5], 0)  # unlabelled: not counted
    # the normaliser is per person: the same 10 px is 0.05 of a 200 px person
    two = pck_curve(np.r_[dist, dist], np.array([100.0, 200.0]), np.r_[vis, vis], np.array([0.05]))
    assert two[0] == pytest.approx((2 + 3) / 10)
    assert pck_curve(dist, np.array([100.0]), np.zeros_like(vis), alphas).tolist() == [0.0] * 5


def test_auc_of_known_curves() -> None:
    assert pck_auc(np.ones_like(ALPHAS)) == pytest.approx(1.0)
    assert pck_auc(ALPHAS / 0.5) == pytest.approx(0.5)  # a straight line from 0 to 1
    assert pck_auc((ALPHAS / 0.5) ** 2) == pytest.approx(1 / 3, abs=1e-4)  # trapezoid on 51 points
    step = (ALPHAS >= 0.1).astype(float)  # 0 up to 0.09, 1 from 0.1: 0.4 full + half a 0.01 step
    assert pck_auc(step) == pytest.approx((0.4 + 0.005) / 0.5)
    assert pck_auc([0.0, 1.0], [0.2, 0.4]) == pytest.approx(0.5)  # divided by the grid's own width
