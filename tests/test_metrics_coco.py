"""COCO box AP via pycocotools from numpy frames."""

from __future__ import annotations

import numpy as np
import pytest

from perception_pkg.metrics.coco_box import coco_box_ap


def _gts():
    rng = np.random.default_rng(0)
    out = []
    for _ in range(4):
        xy = rng.uniform(0, 400, (3, 2))
        out.append({"boxes": np.c_[xy, xy + rng.uniform(40, 120, (3, 2))], "labels": np.array([0, 1, 1])})
    return out


def test_perfect_detections_give_one() -> None:
    gts = _gts()
    dets = [dict(g, scores=np.array([0.9, 0.8, 0.7])) for g in gts]
    r = coco_box_ap(gts, dets, class_names=["person", "car"])
    assert r["AP"] == pytest.approx(1.0)
    assert r["AP50"] == pytest.approx(1.0)
    assert r["per_class"] == {"person": {"AP": 1.0, "AP50": 1.0}, "car": {"AP": 1.0, "AP50": 1.0}}
    assert len(r["pr50"]["car"]) == 101
    assert r["num_gt"] == r["num_det"] == 12


def test_half_the_objects_missed_and_shifted_boxes() -> None:
    gts = _gts()
    # only the person boxes are detected: car AP 0, person AP 1 -> mean 0.5
    dets = [{"boxes": g["boxes"][:1], "labels": g["labels"][:1], "scores": np.array([0.9])} for g in gts]
    r = coco_box_ap(gts, dets)
    assert r["AP50"] == pytest.approx(0.5)
    # boxes shifted to IoU ~0.6 count at AP50 but not at AP75
    shifted = []
    for g in gts:
        b = g["boxes"].copy()
        b[:, [0, 2]] += 0.25 * (b[:, 2:3] - b[:, 0:1])
        shifted.append({"boxes": b, "labels": g["labels"], "scores": np.array([0.9, 0.8, 0.7])})
    r = coco_box_ap(gts, shifted)
    assert r["AP50"] == pytest.approx(1.0)
    assert r["AP75"] == pytest.approx(0.0)


def test_no_detections() -> None:
    gts = _gts()
    empty = [{"boxes": np.zeros((0, 4)), "labels": np.zeros(0), "scores": np.zeros(0)} for _ in gts]
    assert coco_box_ap(gts, empty)["AP"] == 0.0
    with pytest.raises(ValueError, match="one detection frame"):
        coco_box_ap(gts, empty[:2])
