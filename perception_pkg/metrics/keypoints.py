"""Keypoint metrics in numpy: COCO OKS AP (pycocotools), the OKS matrix, PCK@alpha and its AUC.

The one implementation behind ``perception eval pose`` (:mod:`perception_pkg.evaluation.pose`) and the
pose trainer's held-out tables (:mod:`perception_pkg.training.pose_metrics`). Inputs are COCO-style
dicts for the AP (as pycocotools takes them) and plain arrays for the rest; keypoints are COCO-17
(:mod:`perception_pkg.pose.coco17`), in whatever pixel convention the caller uses for both sides.

Definitions
- **OKS** between a predicted and a ground-truth person: pycocotools' ``computeOks`` for a ground truth
  with visible keypoints, ``mean over visible i of exp(-d_i^2 / (2 area (2 sigma_i)^2))`` with COCO's
  sigmas (:data:`~perception_pkg.pose.coco17.OKS_SIGMAS`) and ``area`` the annotation's area; 0 for a
  ground truth with none visible.
- **OKS AP**: pycocotools ``COCOeval(iouType="keypoints")``, OKS thresholds .50:.05:.95, at most
  ``max_dets`` people per image (COCO's keypoint setting: 20), over COCO's area ranges (all, medium
  32^2..96^2, large >= 96^2) or the caller's. ``AP`` is the mean precision over all thresholds and
  recall steps, ``AP50``/``AP75`` at one threshold; ``AR*`` the same for recall; -1 where COCO has
  nothing to score (as ``COCOeval.summarize`` prints it).
- **PCK@alpha**: the share of visible ground-truth keypoints whose prediction lies within
  ``alpha * L`` pixels of it (``distance / L <= alpha``), where the normaliser **L is the longer side of
  the person's ground-truth box**, ``max(w, h)`` (COCO and the simulator have no head boxes, so PCKh's
  head size is not available). A keypoint of an unmatched ground-truth person has distance ``inf``: a
  miss at every alpha.
- **AUC**: the area under PCK(alpha) over the alpha grid (default 0, 0.01, ..., 0.5: 51 points) by the
  trapezoid rule, divided by the grid's width (0.5), so it lies in [0, 1].
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from perception_pkg.pose.coco17 import OKS_SIGMAS

ALPHAS: NDArray[np.float64] = np.linspace(0.0, 0.5, 51)
# pycocotools' keypoint area ranges after "all" (whose range is [0, 1e5^2])
COCO_AREA_RANGES: dict[str, tuple[float, float]] = {"medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e10)}


def oks(
    pred: NDArray, gt_xy: NDArray, gt_vis: NDArray, area: NDArray, sigmas: ArrayLike = OKS_SIGMAS
) -> NDArray[np.float64]:
    """(P, G) object keypoint similarity of predictions ``pred`` (P, K, 2) to ground truth ``gt_xy``
    (G, K, 2) with visibility ``gt_vis`` (G, K; > 0 = labelled) and ``area`` (G,), pycocotools' formula
    for ground truth with visible keypoints (0 where a ground truth has none)."""
    var = (2 * np.asarray(sigmas)) ** 2
    d2 = ((pred[:, None] - gt_xy[None]) ** 2).sum(-1)  # (P, G, K)
    e = d2 / var / (area[None, :, None] + np.spacing(1)) / 2
    vis = gt_vis[None] > 0
    n = vis.sum(-1)
    return np.where(n > 0, (np.exp(-e) * vis).sum(-1) / np.maximum(n, 1), 0.0)


def matched_distances(
    pred_xy: NDArray, pred_scores: NDArray, gt_xy: NDArray, gt_vis: NDArray, area: NDArray
) -> NDArray[np.float64]:
    """(G, K) pixel distance from each ground-truth keypoint to its matched prediction, ``inf`` for a
    ground-truth person nobody matched. Matching is greedy by prediction score: each prediction takes
    the still unmatched ground-truth person of highest OKS, if that OKS is > 0."""
    dist = np.full(gt_xy.shape[:2], np.inf)
    if len(pred_xy):
        sim = oks(pred_xy, gt_xy, gt_vis, area)
        taken = np.zeros(len(gt_xy), dtype=bool)
        for p in np.argsort(-pred_scores, kind="stable"):
            cand = np.where(taken | (sim[p] <= 0), -1.0, sim[p])
            g = int(cand.argmax())
            if cand[g] > 0:
                taken[g] = True
                dist[g] = np.linalg.norm(pred_xy[p] - gt_xy[g], axis=-1)
    return dist


def _hits(dist: NDArray, norm: NDArray, visible: NDArray, alphas: NDArray) -> NDArray[np.bool_]:
    rel = dist / norm[:, None]  # (N, K)
    return (rel[None] <= alphas[:, None, None]) & visible  # (A, N, K)


def pck_curve(
    dist: NDArray, norm: NDArray, visible: NDArray, alphas: ArrayLike = ALPHAS
) -> NDArray[np.float64]:
    """(A,) PCK at each alpha: of the ``visible`` (N, K) keypoints, the share with ``dist`` (N, K;
    pixels, ``inf`` = missed) <= ``alpha * norm`` (N,; the longer side of each ground-truth box)."""
    visible = np.asarray(visible, dtype=bool)
    hit = _hits(dist, norm, visible, np.asarray(alphas, dtype=np.float64))
    return hit.sum(axis=(1, 2)) / max(int(visible.sum()), 1)


def pck_per_keypoint(
    dist: NDArray, norm: NDArray, visible: NDArray, alphas: ArrayLike = ALPHAS
) -> NDArray[np.float64]:
    """(A, K) PCK of each keypoint type (the same counts as :func:`pck_curve`, per column)."""
    visible = np.asarray(visible, dtype=bool)
    hit = _hits(dist, norm, visible, np.asarray(alphas, dtype=np.float64))
    return hit.sum(axis=1) / np.maximum(visible.sum(axis=0), 1)


def pck_auc(pck: ArrayLike, alphas: ArrayLike = ALPHAS) -> float:
    """Trapezoid area under ``pck`` over ``alphas``, divided by the alpha range: in [0, 1]."""
    a = np.asarray(alphas, dtype=np.float64)
    return float(np.trapezoid(np.asarray(pck, dtype=np.float64), a) / (a[-1] - a[0]))


def _stat_names(labels: Sequence[str]) -> list[str]:
    rest = [f"_{lab}" for lab in labels]
    return ["AP", "AP50", "AP75", *(f"AP{r}" for r in rest), "AR", "AR50", "AR75", *(f"AR{r}" for r in rest)]


def coco_keypoint_ap(
    gt: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
    *,
    max_dets: int = 20,
    area_ranges: Mapping[str, tuple[float, float]] | None = None,
    sigmas: ArrayLike = OKS_SIGMAS,
) -> dict[str, float]:
    """OKS AP and AR through pycocotools' keypoint COCOeval (see the module docstring).

    ``gt``: a COCO keypoint dataset dict (images, annotations, categories); ``results``: COCO keypoint
    results (image_id, category_id, keypoints [x, y, score] * K, score). ``area_ranges``: {label: (lo,
    hi)} scored besides "all" (default COCO's medium and large). Returns AP, AP50, AP75, AP_<label>...,
    AR, AR50, AR75, AR_<label>... (0..1, -1 where there is nothing to score); with the defaults these
    are exactly ``COCOeval.summarize``'s 10 keypoint numbers. All 0 when there are no results or no
    ground-truth person with a labelled keypoint (pycocotools cannot load an empty result list).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ranges = dict(COCO_AREA_RANGES if area_ranges is None else area_ranges)
    names = _stat_names(list(ranges))
    if not results or not any(a.get("num_keypoints", 0) > 0 for a in gt["annotations"]):
        return dict.fromkeys(names, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = dict(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(list(results))
        ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        ev.params.maxDets = [int(max_dets)]
        ev.params.areaRng = [[0.0, 1e10], *([float(lo), float(hi)] for lo, hi in ranges.values())]
        ev.params.areaRngLbl = ["all", *ranges]
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval["precision"][..., 0]  # [T thresholds, R recalls, K categories, A areas] at max_dets
    rec = ev.eval["recall"][..., 0]  # [T, K, A]
    t50, t75 = (int(np.flatnonzero(np.isclose(ev.params.iouThrs, t))[0]) for t in (0.5, 0.75))

    def mean(s: NDArray) -> float:  # COCOeval.summarize: the mean of the defined entries, else -1
        s = s[s > -1]
        return float(np.mean(s)) if s.size else -1.0

    out = []
    for table in (prec, rec):
        out += [mean(table[..., 0]), mean(table[t50 : t50 + 1, ..., 0]), mean(table[t75 : t75 + 1, ..., 0])]
        out += [mean(table[..., a]) for a in range(1, len(ranges) + 1)]
    return dict(zip(names, out, strict=True))
