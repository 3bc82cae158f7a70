"""Detection scoring (issue 5): detections against simulator ground truth, one JSON-able report.

The frame types (:class:`GroundTruth`, :class:`Predictions`, :class:`EvalFrame`), the settings and
:func:`evaluate`. Where frames come from is :mod:`.sources`, running a detector over them :mod:`.run`,
the table, JSON and plots :mod:`.report`.

Metrics (:func:`evaluate`), each with the field's own definition:

- COCO box AP, AP50, ... overall and per class, through pycocotools (``metrics.coco_box``);
- the TIDE error breakdown at AP50 (``metrics.tide``, agrees with tidecv);
- for cars, KITTI AP3D and AP_BEV at IoU 0.5 and 0.7 with 40 recall points (``metrics.kitti3d``),
  when the detections carry 3D boxes and the ground truth has them.

Ground-truth hygiene: an object too small (modal box height < ``min_height_px``) or too hidden (fewer
than ``min_visible_pixels`` visible pixels) to be a fair target is *ignored*: it is no positive and no
miss, and a detection that matches no kept object but lands on an ignored one counts neither as true
nor as false positive (pycocotools' ``iscrowd`` rule; the same rule in TIDE and KITTI AP). Every
figure is also reported without the filter (``unfiltered``), where every annotated object counts.

Box conventions: 2D boxes are xyxy in continuous pixel coordinates, pixel i spanning [i, i + 1]
(COCO's); 3D boxes are KITTI camera-frame ``[x, y, z, h, w, l, rotation_y]``, bottom centre.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.metrics.coco_box import coco_box_ap
from perception_pkg.metrics.kitti3d import RECALL_POSITIONS_R40, interpolated_precision_r40, kitti_ap_curves
from perception_pkg.metrics.tide import TideAnalysis

DEFAULT_MIN_HEIGHT_PX = 20.0
DEFAULT_MIN_VISIBLE_PIXELS = 150.0
KITTI_CLASS = "car"


@dataclass
class GroundTruth:
    """Annotated objects of one frame. ``classes`` are names (sources differ in their ids);
    ``visible_pixels`` is NaN where the source does not know it (bags); ``boxes3d`` rows are NaN for
    objects without a 3D box, and the whole array None when the source has no 3D ground truth."""

    boxes: NDArray[np.float64]  # (N, 4) xyxy
    classes: NDArray[np.str_]  # (N,)
    visible_pixels: NDArray[np.float64]  # (N,)
    boxes3d: NDArray[np.float64] | None = None  # (N, 7)
    # share of the amodal box outside the image (KITTI's truncation), NaN / None where unknown
    truncation: NDArray[np.float64] | None = None

    @classmethod
    def empty(cls) -> GroundTruth:
        return cls(np.zeros((0, 4)), np.zeros(0, dtype=str), np.zeros(0), None)


@dataclass
class Predictions:
    """Detections of one frame; ``boxes3d`` (M, 7) aligned row by row with the 2D rows (NaN where a
    detection has no 3D box), or None when the detector gives no 3D. ``boxes3d_only`` holds 3D
    detections that come without 2D rows (a bag's Detection3DArray topic): (boxes, scores, classes)."""

    boxes: NDArray[np.float64]
    scores: NDArray[np.float64]
    classes: NDArray[np.str_]
    boxes3d: NDArray[np.float64] | None = None
    boxes3d_only: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.str_]] | None = None
    scores3d: NDArray[np.float64] | None = None  # 3D confidence per row, when it differs from ``scores``

    @classmethod
    def empty(cls) -> Predictions:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=str))

    def det3d(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.str_]] | None:
        """(boxes (K, 7), scores, classes) of the 3D detections, or None when there are none."""
        if self.boxes3d_only is not None:
            return self.boxes3d_only
        if self.boxes3d is None:
            return None
        return self.boxes3d, self.scores if self.scores3d is None else self.scores3d, self.classes


@dataclass
class EvalFrame:
    """One evaluated frame: an identifier (image file or stamp), its ground truth and detections."""

    key: str
    gt: GroundTruth
    pred: Predictions


@dataclass(frozen=True)
class EvalSettings:
    min_height_px: float = DEFAULT_MIN_HEIGHT_PX
    min_visible_pixels: float = DEFAULT_MIN_VISIBLE_PIXELS
    max_dets: int = 100
    tide_pos_thresh: float = 0.5
    tide_bg_thresh: float = 0.1
    kitti_class: str = KITTI_CLASS
    kitti_iou: tuple[float, ...] = (0.5, 0.7)
    max_truncation_3d: float = 0.3


# --------------------------------------------------------------------------------------------------
# ground-truth hygiene


def ignore_reasons(gt: GroundTruth, settings: EvalSettings) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """(too_small, too_hidden) per object. Unknown visible pixels (NaN) never make an object hidden."""
    height = gt.boxes[:, 3] - gt.boxes[:, 1]
    small = height < settings.min_height_px
    with np.errstate(invalid="ignore"):
        hidden = np.nan_to_num(gt.visible_pixels, nan=np.inf) < settings.min_visible_pixels
    return small, hidden


# --------------------------------------------------------------------------------------------------
# metrics


def _frames_2d(
    frames: Sequence[EvalFrame], names: Sequence[str], ignores: Sequence[NDArray[np.bool_]] | None
) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """Metric frames (``metrics.boxes2d`` format) over the evaluated classes; other classes dropped."""
    index = {n: i for i, n in enumerate(names)}
    gts, dets = [], []
    for k, f in enumerate(frames):
        g_lab = np.array([index.get(c, -1) for c in f.gt.classes.tolist()], dtype=np.int64)
        g_in = g_lab >= 0
        gt = {"boxes": f.gt.boxes[g_in], "labels": g_lab[g_in]}
        if ignores is not None:
            gt["ignore"] = ignores[k][g_in]
        d_lab = np.array([index.get(c, -1) for c in f.pred.classes.tolist()], dtype=np.int64)
        d_in = d_lab >= 0
        gts.append(gt)
        dets.append({"boxes": f.pred.boxes[d_in], "scores": f.pred.scores[d_in], "labels": d_lab[d_in]})
    return gts, dets


def _kitti(
    frames: Sequence[EvalFrame], settings: EvalSettings, ignores: Sequence[NDArray[np.bool_]] | None
) -> dict[str, Any]:
    """AP3D / AP_BEV of ``settings.kitti_class`` or ``{"skipped": why}``."""
    cls = settings.kitti_class
    if not any(f.gt.boxes3d is not None and np.any(f.gt.classes == cls) for f in frames):
        return {"skipped": f"the ground truth has no 3D boxes of class {cls!r}"}
    if not any(f.pred.det3d() is not None for f in frames):
        return {"skipped": "the detections carry no 3D boxes (no RTM3D heads, or no camera model)"}
    g_boxes, g_ign, d_boxes, d_scores = [], [], [], []
    missing_3d = 0
    for k, f in enumerate(frames):
        sel = f.gt.classes == cls
        g3 = f.gt.boxes3d[sel] if f.gt.boxes3d is not None else np.full((int(sel.sum()), 7), np.nan)
        # a GT without a 3D box cannot be matched in 3D: it is ignored rather than counted as missed
        no3d = ~np.all(np.isfinite(g3), axis=1)
        ign = no3d if ignores is None else ignores[k][sel] | no3d
        if ignores is not None and f.gt.truncation is not None:
            # KITTI's moderate difficulty stops at 30% truncation: a box cut by the image border has
            # too few of its 9 keypoints in view to pin it down (applied with the other filters)
            with np.errstate(invalid="ignore"):
                ign = ign | (f.gt.truncation[sel] > settings.max_truncation_3d)
        g_boxes.append(np.where(no3d[:, None], 0.0, g3))
        g_ign.append(ign)
        det = f.pred.det3d()
        if det is None:
            d_boxes.append(np.zeros((0, 7)))
            d_scores.append(np.zeros(0))
            continue
        b, s, c = det
        m = c == cls
        missing_3d += int(np.sum(m & ~np.all(np.isfinite(b), axis=1)))
        d_boxes.append(b[m])
        d_scores.append(s[m])
    curves = kitti_ap_curves(g_boxes, d_boxes, d_scores, settings.kitti_iou, g_ign)
    return {
        "class": cls,
        "recall_positions": 40,
        "AP": {k: v[0] for k, v in curves.items()},
        "pr": {k: interpolated_precision_r40(v[1], v[2]).tolist() for k, v in curves.items()},
        "num_gt": int(sum(int((~i).sum()) for i in g_ign)),
        "num_det": int(sum(len(s) for s in d_scores)),
        "num_det_without_3d": missing_3d,
    }


def _metrics(
    frames: Sequence[EvalFrame],
    names: Sequence[str],
    settings: EvalSettings,
    ignores: Sequence[NDArray[np.bool_]] | None,
) -> dict[str, Any]:
    gts, dets = _frames_2d(frames, names, ignores)
    coco = coco_box_ap(gts, dets, class_names=names, max_dets=settings.max_dets)
    tide = TideAnalysis(gts, dets, settings.tide_pos_thresh, settings.tide_bg_thresh, settings.max_dets)
    return {"coco": coco, "tide": tide.summary(), "kitti3d": _kitti(frames, settings, ignores)}


def evaluate(
    frames: Sequence[EvalFrame],
    class_names: Sequence[str],
    settings: EvalSettings | None = None,
) -> dict[str, Any]:
    """All metrics with the ground-truth filter (``filtered``) and without (``unfiltered``), counts and
    settings, as plain JSON-able values. ``class_names``: the classes to score (others are dropped
    from both sides and counted under ``counts.not_evaluated``)."""
    settings = settings or EvalSettings()
    names = list(class_names)
    reasons = [ignore_reasons(f.gt, settings) for f in frames]
    ignores = [small | hidden for small, hidden in reasons]
    per_class: dict[str, dict[str, int]] = {}
    for n in names:
        in_gt = [f.gt.classes == n for f in frames]
        per_class[n] = {
            "gt": int(sum(m.sum() for m in in_gt)),
            "gt_kept": int(sum((m & ~i).sum() for m, i in zip(in_gt, ignores, strict=True))),
            "gt_ignored": int(sum((m & i).sum() for m, i in zip(in_gt, ignores, strict=True))),
            "gt_too_small": int(sum((m & r[0]).sum() for m, r in zip(in_gt, reasons, strict=True))),
            "gt_too_hidden": int(sum((m & r[1]).sum() for m, r in zip(in_gt, reasons, strict=True))),
            "detections": int(sum(np.sum(f.pred.classes == n) for f in frames)),
        }
    other_gt: dict[str, int] = {}
    other_det: dict[str, int] = {}
    for f in frames:
        for c in f.gt.classes.tolist():
            if c not in per_class:
                other_gt[c] = other_gt.get(c, 0) + 1
        for c in f.pred.classes.tolist():
            if c not in per_class:
                other_det[c] = other_det.get(c, 0) + 1
    return {
        "settings": _settings_dict(settings),
        "classes": names,
        "counts": {
            "frames": len(frames),
            "per_class": per_class,
            "not_evaluated": {"gt": other_gt, "detections": other_det},
            "visible_pixels_known": bool(
                all(np.all(np.isfinite(f.gt.visible_pixels)) for f in frames if len(f.gt.classes))
            ),
        },
        "filtered": _metrics(frames, names, settings, ignores),
        "unfiltered": _metrics(frames, names, settings, None),
    }


def _settings_dict(settings: EvalSettings) -> dict[str, Any]:
    out = asdict(settings)
    out["kitti_iou"] = list(settings.kitti_iou)
    out["ignore_rule"] = (
        f"GT ignored when its modal box is < {settings.min_height_px:g} px high or it has < "
        f"{settings.min_visible_pixels:g} visible pixels (where the source knows them); a detection "
        "matching no kept GT but covering an ignored GT of its class (2D: intersection / detection area "
        ">= IoU threshold, pycocotools iscrowd; 3D: IoU >= threshold) is neither TP nor FP"
    )
    out["box_convention"] = "xyxy continuous pixels, pixel i spans [i, i+1] (COCO)"
    out["kitti_note"] = (
        "R40 AP on a greedy score-ordered match; no KITTI difficulty levels (the GT filter above "
        f"stands in, plus KITTI moderate's truncation limit: filtered 3D figures ignore GT more than "
        f"{settings.max_truncation_3d:.0%} outside the image where the source gives amodal boxes); "
        "detections whose 3D solve failed count as false positives"
    )
    return out


__all__ = [
    "DEFAULT_MIN_HEIGHT_PX",
    "DEFAULT_MIN_VISIBLE_PIXELS",
    "KITTI_CLASS",
    "RECALL_POSITIONS_R40",
    "EvalFrame",
    "EvalSettings",
    "GroundTruth",
    "Predictions",
    "evaluate",
    "ignore_reasons",
]
