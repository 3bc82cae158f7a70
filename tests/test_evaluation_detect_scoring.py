"""Ignored ground truth in the detection metrics (COCO via pycocotools' iscrowd, TIDE, KITTI AP3D), and
the evaluation core on hand-made frames: exact values for perfect, one-FP, one-miss and ignore cases."""

from __future__ import annotations

import numpy as np
import pytest

from perception_pkg.evaluation.detect import EvalFrame, EvalSettings, GroundTruth, Predictions, evaluate
from perception_pkg.metrics.boxes2d import ioa_xyxy
from perception_pkg.metrics.coco_box import coco_box_ap
from perception_pkg.metrics.kitti3d import kitti_ap
from perception_pkg.metrics.tide import MAIN_ERRORS, SPECIAL_ERRORS, TideAnalysis, tide_errors

# kept objects: large; the third is 12 px high, below the default 20 px
BOXES = np.array([[10.0, 10.0, 110.0, 90.0], [200.0, 40.0, 260.0, 160.0], [300.0, 50.0, 310.0, 62.0]])
CLASSES = np.array(["car", "person", "car"])
VISIBLE = np.array([5000.0, 4000.0, 100.0])
CAR3D = np.array([[2.0, 1.6, 20.0, 1.5, 1.6, 3.9, 0.3], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                  [-4.0, 1.6, 45.0, 1.5, 1.7, 4.1, -0.2]])  # fmt: skip


def _gt() -> GroundTruth:
    return GroundTruth(BOXES.copy(), CLASSES.copy(), VISIBLE.copy(), CAR3D.copy())


def _pred(
    rows: list[int], extra: list[tuple[list[float], str, float]] = (), with3d: bool = True
) -> Predictions:
    boxes = [BOXES[r] for r in rows] + [np.array(b, float) for b, _, _ in extra]
    classes = [CLASSES[r] for r in rows] + [c for _, c, _ in extra]
    scores = [0.9 - 0.1 * i for i in range(len(rows))] + [s for _, _, s in extra]
    b3 = [CAR3D[r] for r in rows] + [np.full(7, np.nan) for _ in extra]
    return Predictions(
        np.array(boxes).reshape(-1, 4),
        np.array(scores),
        np.array(classes, dtype=str),
        np.array(b3).reshape(-1, 7) if with3d else None,
    )


def _report(pred: Predictions) -> dict:
    return evaluate([EvalFrame("f0", _gt(), pred)], ["person", "car"], EvalSettings())


def test_perfect_detections_score_one_and_no_tide_error() -> None:
    r = _report(_pred([0, 1, 2]))
    for part in ("filtered", "unfiltered"):
        coco, tide = r[part]["coco"], r[part]["tide"]
        assert coco["AP"] == pytest.approx(1.0) and coco["AP50"] == pytest.approx(1.0)
        assert all(v["AP50"] == pytest.approx(1.0) for v in coco["per_class"].values())
        assert tide["AP50"] == pytest.approx(100.0)
        assert all(tide["main_dAP"][k] == 0.0 for k in MAIN_ERRORS)
        assert all(tide["special_dAP"][k] == 0.0 for k in SPECIAL_ERRORS)
        assert all(v == pytest.approx(1.0) for v in r[part]["kitti3d"]["AP"].values())
    counts = r["counts"]["per_class"]
    assert counts["car"] == {"gt": 2, "gt_kept": 1, "gt_ignored": 1, "gt_too_small": 1, "gt_too_hidden": 1,
                             "detections": 2}  # fmt: skip
    assert r["filtered"]["tide"]["ignored"] == {"gt": 1, "detections": 1}


def test_detection_on_ignored_gt_changes_nothing_and_missing_it_is_no_miss() -> None:
    with_it, without_it = _report(_pred([0, 1, 2])), _report(_pred([0, 1]))
    for key in ("AP", "AP50", "AP75"):
        assert with_it["filtered"]["coco"][key] == without_it["filtered"]["coco"][key] == pytest.approx(1.0)
    assert without_it["filtered"]["tide"]["counts"]["Miss"] == 0
    assert without_it["filtered"]["kitti3d"]["AP"]["AP3D@0.7"] == pytest.approx(1.0)
    # unfiltered, the small car counts: missing it halves car recall
    assert without_it["unfiltered"]["coco"]["per_class"]["car"]["AP50"] == pytest.approx(0.5, abs=0.01)
    assert without_it["unfiltered"]["tide"]["counts"]["Miss"] == 1
    assert without_it["unfiltered"]["kitti3d"]["AP"]["AP3D@0.7"] == pytest.approx(0.5)


def test_one_background_false_positive_is_bkg() -> None:
    # a car box over empty road, scored above every true positive
    r = _report(_pred([0, 1], extra=[([400.0, 100.0, 450.0, 140.0], "car", 0.95)]))
    tide = r["filtered"]["tide"]
    assert tide["counts"] == {"Cls": 0, "Loc": 0, "Both": 0, "Dupe": 0, "Bkg": 1, "Miss": 0, "FP": 1, "FN": 0}
    # car: precision 1/2 until the TP -> COCO AP 0.5 for car, 1.0 for person: mean 0.75
    assert tide["AP50"] == pytest.approx(75.0, abs=0.01)
    assert tide["main_dAP"]["Bkg"] == pytest.approx(25.0, abs=0.01)
    assert tide["special_dAP"]["FP"] == pytest.approx(25.0, abs=0.01)
    assert r["filtered"]["coco"]["AP50"] == pytest.approx(0.75, abs=0.01)
    assert {k for k, v in tide["main_dAP"].items() if v > 0} == {"Bkg"}
    # the 3D solve of that detection failed (NaN): it is a false positive in AP3D too
    assert r["filtered"]["kitti3d"]["num_det_without_3d"] == 1
    assert r["filtered"]["kitti3d"]["AP"]["AP3D@0.5"] == pytest.approx(0.5)


def test_a_missed_object_is_miss_and_a_wrong_class_is_cls() -> None:
    r = _report(_pred([0]))
    assert r["filtered"]["tide"]["counts"]["Miss"] == 1
    assert r["filtered"]["tide"]["main_dAP"]["Miss"] > 0
    r = _report(_pred([0], extra=[(list(BOXES[1]), "car", 0.8)]))
    counts = r["filtered"]["tide"]["counts"]
    assert counts["Cls"] == 1 and counts["Miss"] == 0 and counts["FP"] == 1


def _random_frames(seed: int, n: int = 30):
    """GT with ~30% ignored boxes, detections: jittered hits on kept and ignored GT, background."""
    rng = np.random.default_rng(seed)
    gts, dets = [], []
    for _ in range(n):
        k = rng.integers(1, 6)
        xy = rng.uniform(0, 400, (k, 2))
        g = np.c_[xy, xy + rng.uniform(8, 120, (k, 2))]
        gl = rng.integers(0, 2, k)
        ign = rng.random(k) < 0.3
        sel = rng.random(k) < 0.8
        wh = np.tile(g[sel, 2:] - g[sel, :2], 2)
        d = g[sel] + rng.normal(0, 0.12, (int(sel.sum()), 4)) * wh
        d[:, 2:] = np.maximum(d[:, 2:], d[:, :2] + 1)
        bg = rng.uniform(450, 600, (rng.poisson(0.7), 2))
        d = np.r_[d, np.c_[bg, bg + 20]]
        dl = np.r_[gl[sel], rng.integers(0, 2, len(bg))]
        gts.append({"boxes": g, "labels": gl, "ignore": ign})
        dets.append({"boxes": d, "labels": dl, "scores": rng.uniform(0.05, 1.0, len(d))})
    return gts, dets


@pytest.mark.parametrize("seed", [0, 3])
def test_tide_ignore_agrees_with_pycocotools_iscrowd(seed: int) -> None:
    gts, dets = _random_frames(seed)
    ours = TideAnalysis(gts, dets)
    coco = coco_box_ap(gts, dets)
    assert ours.num_ignored_dets > 0
    assert ours.ap() == pytest.approx(100 * coco["AP50"], abs=1e-6)
    assert coco["num_ignored"] == ours.num_ignored_gt == sum(int(g["ignore"].sum()) for g in gts)


@pytest.mark.parametrize("seed", [1, 2])
def test_tide_ignore_equals_dropping_gt_and_absorbed_detections(seed: int) -> None:
    """The stated semantics: the breakdown is that of the data without the ignored GT and without the
    unmatched detections they absorb (absorbed computed here independently, from the kept-only run)."""
    gts, dets = _random_frames(seed)
    kept = [{"boxes": g["boxes"][~g["ignore"]], "labels": g["labels"][~g["ignore"]]} for g in gts]
    plain = TideAnalysis(kept, dets)
    reduced, offset = [], 0
    for g, d in zip(gts, dets, strict=True):
        m = len(d["scores"])
        tp = plain.det_tp[offset : offset + m]
        order = np.argsort(-d["scores"], kind="stable")  # the analysis keeps rows in score order
        tp_rows = np.zeros(m, bool)
        tp_rows[order] = tp
        offset += m
        ig = g["ignore"]
        hit = (ioa_xyxy(d["boxes"], g["boxes"][ig]) >= 0.5) & (d["labels"][:, None] == g["labels"][ig][None])
        keep = tp_rows | ~hit.any(axis=1)
        reduced.append({k: v[keep] for k, v in d.items()})
    ours, reference = tide_errors(gts, dets), tide_errors(kept, reduced)
    ignored = ours.pop("ignored")
    reference.pop("ignored")
    assert ours == reference
    assert ignored["gt"] == sum(int(g["ignore"].sum()) for g in gts)
    assert ignored["detections"] == plain.det_tp.size - sum(len(r["scores"]) for r in reduced) > 0


def test_kitti_ignore_drops_detection_on_ignored_box() -> None:
    gt = [CAR3D[[0, 2]]]
    det = [CAR3D[[0, 2]]]
    scores = [np.array([0.9, 0.8])]
    assert kitti_ap(gt, det, scores, gt_ignore=[np.array([False, True])])["AP3D@0.7"] == pytest.approx(1.0)
    # without the flag the far car is a positive too; without its detection it is missed
    assert kitti_ap(gt, [CAR3D[[0]]], [np.array([0.9])])["AP3D@0.7"] == pytest.approx(0.5)
    # a failed solve (NaN) above the TP: a false positive, not an error
    nan_first = [np.r_[np.full((1, 7), np.nan), CAR3D[[0]]]]
    ap = kitti_ap([CAR3D[[0]]], nan_first, [np.array([0.95, 0.9])])["AP3D@0.5"]
    assert ap == pytest.approx(0.5)
