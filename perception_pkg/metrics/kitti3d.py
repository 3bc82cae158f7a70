"""KITTI-style AP3D and AP_BEV (40 recall positions) for one class, from numpy boxes.

Boxes are ``(N, 7)`` ``[x, y, z, h, w, l, rotation_y]`` in the camera frame (geometry3d.BOX_FIELDS).
Frames are aligned lists: ``gt_boxes[i]`` (N_i, 7), ``det_boxes[i]`` (M_i, 7), ``det_scores[i]`` (M_i,).

Method: per frame, detections in descending score take the unmatched GT of highest IoU if it is
>= the threshold (plain greedy matching by score order); then over all frames the detections are
sorted by score into one precision/recall curve, precision is made monotone (max over higher recall),
and AP = mean interpolated precision at recall 1/40, 2/40, ..., 1 (KITTI's R40, Simonelli et al. 2019,
which drops the recall-0 point of the old R11).

Simplifications against the official devkit (``cpp/evaluate_object.cpp``), stated so numbers are not
mistaken for leaderboard numbers:

- no difficulty levels: no filtering of GT by 2D box height, occlusion or truncation (easy/moderate/hard
  all collapse to "every GT of the class counts") unless the caller passes ``gt_ignore``; an ignored
  GT is no positive, and a detection matching no kept GT but overlapping an ignored one by >= the
  threshold is dropped (neither TP nor FP), as the devkit treats GT outside the difficulty;
- a detection whose box has NaNs (a failed 3D solve) overlaps nothing: it is a false positive;
- no DontCare regions and no neighbouring classes (Van for Car, Person_sitting for Pedestrian): a
  detection on those counts as a false positive here, where the devkit ignores it;
- the devkit assigns each GT the highest-*scoring* overlapping detection and samples 41 score
  thresholds from the true-positive scores; we match greedily by score and use the exact curve;
- no min-overlap per class table: the caller chooses the IoU (0.7 car / 0.5 ped in the devkit);
- no orientation similarity (AOS).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from perception_pkg.geometry3d.box3d import bev_iou, box3d_iou

RECALL_POSITIONS_R40 = np.arange(1, 41) / 40.0


def match_frame(iou: np.ndarray, scores: np.ndarray, thresh: float) -> np.ndarray:
    """Greedy match in descending score: True where a detection is a true positive."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    tp = np.zeros(iou.shape[0], bool)
    taken = np.zeros(iou.shape[1], bool)
    for d in order:
        if iou.shape[1] == 0:
            break
        cand = np.where(taken, -1.0, iou[d])
        g = int(np.argmax(cand))
        if cand[g] >= thresh:
            tp[d], taken[g] = True, True
    return tp


def ap_r40(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> tuple[float, np.ndarray, np.ndarray]:
    """AP (0..1) with 40-point interpolation; also the (recall, precision) curve for plots."""
    scores = np.asarray(scores, dtype=np.float64)
    if num_gt <= 0 or len(scores) == 0:
        return 0.0, np.zeros(0), np.zeros(0)
    order = np.argsort(-scores, kind="stable")
    hit = np.asarray(tp, bool)[order]
    ctp = np.cumsum(hit)
    precision = ctp / np.arange(1, len(hit) + 1)
    recall = ctp / num_gt
    return float(interpolated_precision_r40(recall, precision).mean()), recall, precision


def interpolated_precision_r40(recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Precision at recall 1/40 .. 1 (40 values) of a score-ordered curve; their mean is the R40 AP."""
    if len(recall) == 0:
        return np.zeros(len(RECALL_POSITIONS_R40))
    envelope = np.maximum.accumulate(np.asarray(precision, dtype=np.float64)[::-1])[::-1]
    # interpolated precision at r = max precision over points with recall >= r (0 if r is never reached)
    idx = np.searchsorted(recall, RECALL_POSITIONS_R40 - 1e-12, side="left")
    return np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0)


def _iou(iou_fn, dets: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """IoU matrix with NaN boxes (failed solves) overlapping nothing; argmax would pick a NaN."""
    if len(dets) == 0 or len(gts) == 0:
        return np.zeros((len(dets), len(gts)))
    return np.nan_to_num(iou_fn(dets, gts), nan=0.0)


def kitti_ap_curves(
    gt_boxes: Sequence[np.ndarray],
    det_boxes: Sequence[np.ndarray],
    det_scores: Sequence[np.ndarray],
    iou_thresholds: Sequence[float] = (0.5, 0.7),
    gt_ignore: Sequence[np.ndarray] | None = None,
) -> dict[str, tuple[float, np.ndarray, np.ndarray]]:
    """Like :func:`kitti_ap`, each key giving (AP, recall, precision) with the curve in score order."""
    if not (len(gt_boxes) == len(det_boxes) == len(det_scores)):
        raise ValueError("gt_boxes, det_boxes and det_scores need one entry per frame")
    if gt_ignore is not None and len(gt_ignore) != len(gt_boxes):
        raise ValueError("gt_ignore needs one entry per frame")
    gts = [np.asarray(g, dtype=np.float64).reshape(-1, 7) for g in gt_boxes]
    dets = [np.asarray(d, dtype=np.float64).reshape(-1, 7) for d in det_boxes]
    scores = [np.asarray(s, dtype=np.float64).reshape(-1) for s in det_scores]
    if gt_ignore is None:
        ignore = [np.zeros(len(g), bool) for g in gts]
    else:
        ignore = [np.asarray(i, dtype=bool).reshape(-1) for i in gt_ignore]
        if any(len(i) != len(g) for i, g in zip(ignore, gts, strict=True)):
            raise ValueError("gt_ignore[i] needs one flag per ground-truth box of frame i")
    num_gt = sum(int((~i).sum()) for i in ignore)
    out: dict[str, tuple[float, np.ndarray, np.ndarray]] = {}
    for name, iou_fn in (("AP3D", box3d_iou), ("APBEV", bev_iou)):
        # once per metric for all thresholds: kept GT for matching, ignored GT for absorbing
        kept = [_iou(iou_fn, d, g[~i]) for d, g, i in zip(dets, gts, ignore, strict=True)]
        ign = [_iou(iou_fn, d, g[i]) for d, g, i in zip(dets, gts, ignore, strict=True)]
        for thr in iou_thresholds:
            tps, keep = [], []
            for iou_k, iou_i, s in zip(kept, ign, scores, strict=True):
                tp = match_frame(iou_k, s, thr)
                absorbed = ~tp & (iou_i >= thr).any(axis=1) if iou_i.shape[1] else np.zeros(len(tp), bool)
                tps.append(tp[~absorbed])
                keep.append(~absorbed)
            all_tp = np.concatenate(tps) if tps else np.zeros(0, bool)
            all_scores = (
                np.concatenate([s[k] for s, k in zip(scores, keep, strict=True)]) if scores else np.zeros(0)
            )
            out[f"{name}@{thr:g}"] = ap_r40(all_scores, all_tp, num_gt)
    return out


def kitti_ap(
    gt_boxes: Sequence[np.ndarray],
    det_boxes: Sequence[np.ndarray],
    det_scores: Sequence[np.ndarray],
    iou_thresholds: Sequence[float] = (0.5, 0.7),
    gt_ignore: Sequence[np.ndarray] | None = None,
) -> dict[str, float]:
    """AP3D and AP_BEV (0..1) for each threshold: keys ``AP3D@0.5``, ``APBEV@0.7``, ... for one class.

    ``gt_ignore[i]`` (optional) flags ground truth of frame i to ignore (see the module docstring).
    """
    curves = kitti_ap_curves(gt_boxes, det_boxes, det_scores, iou_thresholds, gt_ignore)
    return {k: v[0] for k, v in curves.items()}
