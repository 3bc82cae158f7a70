"""TIDE error breakdown for boxes (Bolya et al., tide.txt; SPECS "Detection"), in numpy.

Matching at ``t_f`` (0.5): per image, detections in score order each take the unmatched same-class GT
of highest IoU if it is >= t_f (COCO's greedy rule). Every unmatched detection is then, in this order:

- **Loc**: best same-class IoU (matched GT included) in [t_b, t_f];
- **Cls**: best wrong-class IoU >= t_f;
- **Dupe**: IoU >= t_f with a same-class GT that is already matched;
- **Bkg**: IoU <= t_b with every GT;
- **Both**: anything else (wrong class and poorly localised).

A GT left unmatched is a false negative; it is a **Miss** unless a Cls or Loc error points at it.

Oracles (each applied alone to the baseline, "individually, not progressively"):
Cls/Loc turn the highest-scoring error pointing at an unmatched GT into a true positive (with the GT's
class) and drop the rest (errors pointing at a matched GT are dropped too); Dupe/Bkg/Both drop their
detections; Miss removes the missed GT from the positives. FP drops every false positive; FN removes
every unmatched GT. dAP = AP(fixed) - AP, main types clipped at 0 as the paper's code does.

AP is the COCO 101-point interpolated AP x 100, averaged over classes that have GT or detections
(a class with detections but no GT scores 0, as in ``tidecv``).

Where this differs from ``tidecv`` 1.0.1 on purpose: detections on images with no GT entry at all are
evaluated (as Bkg) rather than skipped, since the image list here is explicit. Ignored ground truth
(``"ignore"`` flags, :mod:`.boxes2d`) follows pycocotools' crowd rule: after matching against the kept
GT, a detection left unmatched whose intersection with a same-class ignored box covers >= t_f of its
own area is dropped from everything, AP and error types alike; the result is exactly this analysis run
without the ignored GT and those detections. tidecv's ignore regions differ: it uses > t_f, still files
the ignored detections as errors, and its oracles then put them back as false positives.
Ties in score are broken by image then rank order, which can differ from tidecv's dict order only
when two detections have exactly equal scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from perception_pkg.metrics.boxes2d import Frame, as_arrays, check_aligned, ignore_flags, ioa_xyxy, iou_xyxy

MAIN_ERRORS = ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss")
SPECIAL_ERRORS = ("FP", "FN")
_CODE = {name: i for i, name in enumerate(MAIN_ERRORS)}
_NONE = -1


def _ap101(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """COCO-style AP x 100: precision envelope sampled at recall 0, 0.01, ..., 1 (searchsorted 'left')."""
    if num_gt <= 0:
        return 0.0
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    hit = tp[order]
    ctp = np.cumsum(hit)
    cfp = np.cumsum(~hit)
    prec = ctp / (ctp + cfp)
    rec = ctp / num_gt
    prec = np.maximum.accumulate(prec[::-1])[::-1]
    x = np.arange(101) / 100
    idx = np.searchsorted(rec, x, side="left")
    y = np.where(idx < len(prec), prec[np.minimum(idx, len(prec) - 1)], 0.0)
    return float(y.mean() * 100.0)


class TideAnalysis:
    """Matches once, classifies every error, then evaluates AP under any combination of oracles."""

    def __init__(
        self,
        gts: Sequence[Frame],
        dets: Sequence[Frame],
        pos_thresh: float = 0.5,
        bg_thresh: float = 0.1,
        max_dets: int = 100,
    ) -> None:
        check_aligned(gts, dets)
        self.pos_thresh, self.bg_thresh = pos_thresh, bg_thresh
        d_cls, d_score, d_tp, d_err, d_target = [], [], [], [], []
        g_cls, g_used, g_usable = [], [], []
        g_offset = 0
        self.num_ignored_gt = self.num_ignored_dets = 0
        for gt, det in zip(gts, dets, strict=True):
            gb, gl, _ = as_arrays(gt, with_scores=False)
            ig = ignore_flags(gt, len(gb))
            igb, igl = gb[ig], gl[ig]
            gb, gl = gb[~ig], gl[~ig]
            self.num_ignored_gt += int(ig.sum())
            db, dl, ds = as_arrays(det, with_scores=True)
            order = np.argsort(-ds, kind="stable")[:max_dets]
            db, dl, ds = db[order], dl[order], ds[order]
            n_d, n_g = len(db), len(gb)
            iou = iou_xyxy(db, gb)
            same = dl[:, None] == gl[None, :]
            cls_iou = iou * same
            tp = np.zeros(n_d, bool)
            used = np.zeros(n_g, bool)
            buf = cls_iou.copy()
            for d in range(n_d if n_g else 0):
                g = int(np.argmax(buf[d]))
                if buf[d, g] >= pos_thresh:
                    tp[d], used[g] = True, True
                    buf[:, g] = 0.0
            if len(igb) and n_d:
                # an unmatched detection never took a GT from another one, so dropping it after the
                # matching leaves every other match as it was
                absorbed = ~tp & np.any(
                    (ioa_xyxy(db, igb) >= pos_thresh) & (dl[:, None] == igl[None, :]), axis=1
                )
                if absorbed.any():
                    k = ~absorbed
                    db, dl, ds, tp = db[k], dl[k], ds[k], tp[k]
                    iou, same, cls_iou = iou[k], same[k], cls_iou[k]
                    n_d = len(db)
                    self.num_ignored_dets += int(absorbed.sum())
            err = np.full(n_d, _NONE)
            target = np.full(n_d, _NONE)  # global GT index a Cls/Loc oracle would claim, -1 if suppressed
            usable = np.zeros(n_g, bool)
            noncls_iou = iou * ~same
            used_cls_iou = cls_iou * used[None, :]
            for d in np.flatnonzero(~tp):
                if n_g == 0:
                    err[d] = _CODE["Bkg"]
                    continue
                g = int(np.argmax(cls_iou[d]))
                g2 = int(np.argmax(noncls_iou[d]))
                if bg_thresh <= cls_iou[d, g] <= pos_thresh:
                    err[d], claim = _CODE["Loc"], g
                elif noncls_iou[d, g2] >= pos_thresh:
                    err[d], claim = _CODE["Cls"], g2
                elif used_cls_iou[d].max() >= pos_thresh:
                    err[d] = _CODE["Dupe"]
                    continue
                elif iou[d].max() <= bg_thresh:
                    err[d] = _CODE["Bkg"]
                    continue
                else:
                    err[d] = _CODE["Both"]
                    continue
                if not used[claim]:
                    usable[claim] = True
                    target[d] = g_offset + claim
            d_cls.append(dl)
            d_score.append(ds)
            d_tp.append(tp)
            d_err.append(err)
            d_target.append(target)
            g_cls.append(gl)
            g_used.append(used)
            g_usable.append(usable)
            g_offset += n_g
        cat = np.concatenate
        self.det_cls = cat(d_cls) if d_cls else np.zeros(0, np.int64)
        self.det_score = cat(d_score) if d_score else np.zeros(0)
        self.det_tp = cat(d_tp) if d_tp else np.zeros(0, bool)
        self.det_err = cat(d_err) if d_err else np.zeros(0, np.int64)
        self.det_target = cat(d_target) if d_target else np.zeros(0, np.int64)
        self.gt_cls = cat(g_cls) if g_cls else np.zeros(0, np.int64)
        self.gt_used = cat(g_used) if g_used else np.zeros(0, bool)
        gt_usable = cat(g_usable) if g_usable else np.zeros(0, bool)
        self.gt_miss = ~self.gt_used & ~gt_usable
        # Per GT, only the highest-scoring Cls/Loc error claiming it is fixed (first one on exact ties):
        # two fixes cannot both become true positives of one GT.
        self.det_fixable = np.zeros(len(self.det_tp), bool)
        claims = np.flatnonzero(self.det_target >= 0)
        best: dict[int, int] = {}
        for d in claims:
            g = int(self.det_target[d])
            if g not in best or self.det_score[d] > self.det_score[best[g]]:
                best[g] = int(d)
        self.det_fixable[list(best.values())] = True
        self.classes = np.union1d(self.det_cls, self.gt_cls)

    def ap(self, fixed: Iterable[str] = ()) -> float:
        """mAP x 100 with the named oracles (any of MAIN_ERRORS and SPECIAL_ERRORS) applied together."""
        fixed = set(fixed)
        unknown = fixed - set(MAIN_ERRORS) - set(SPECIAL_ERRORS)
        if unknown:
            raise ValueError(f"unknown TIDE error types: {sorted(unknown)}")
        cls = self.det_cls.copy()
        tp = self.det_tp.copy()
        keep = np.ones(len(tp), bool)
        for name in fixed & set(MAIN_ERRORS):
            sel = self.det_err == _CODE[name]
            if name in ("Cls", "Loc"):
                ok = sel & self.det_fixable
                tp[ok] = True
                cls[ok] = self.gt_cls[self.det_target[ok]]
                keep[sel & ~ok] = False
            elif name != "Miss":
                keep[sel] = False
        if "FP" in fixed:  # FP oracle: no false positives at all (tidecv scores them 0, which is the same)
            keep &= tp
        gt_removed = np.zeros(len(self.gt_cls), bool)
        if "Miss" in fixed:
            gt_removed |= self.gt_miss
        if "FN" in fixed:
            gt_removed |= ~self.gt_used
        aps = []
        for c in self.classes:
            num_gt = int(np.sum((self.gt_cls == c) & ~gt_removed))
            m = keep & (cls == c)
            if num_gt == 0 and not m.any():
                continue  # an empty class does not count towards the mean
            aps.append(_ap101(self.det_score[m], tp[m], num_gt))
        return float(np.mean(aps)) if aps else 0.0

    def counts(self) -> dict[str, int]:
        out = {name: int(np.sum(self.det_err == _CODE[name])) for name in MAIN_ERRORS if name != "Miss"}
        out["Miss"] = int(self.gt_miss.sum())
        out["FP"] = int(np.sum(~self.det_tp))
        out["FN"] = int(np.sum(~self.gt_used))
        return out

    def summary(self) -> dict[str, object]:
        base = self.ap()
        main = {name: max(self.ap([name]) - base, 0.0) for name in MAIN_ERRORS}
        special = {name: self.ap([name]) - base for name in SPECIAL_ERRORS}
        return {
            "AP50" if self.pos_thresh == 0.5 else f"AP{round(self.pos_thresh * 100)}": base,
            "pos_thresh": self.pos_thresh,
            "bg_thresh": self.bg_thresh,
            "main_dAP": main,
            "special_dAP": special,
            "counts": self.counts(),
            "ignored": {"gt": self.num_ignored_gt, "detections": self.num_ignored_dets},
        }


def tide_errors(
    gts: Sequence[Frame],
    dets: Sequence[Frame],
    pos_thresh: float = 0.5,
    bg_thresh: float = 0.1,
    max_dets: int = 100,
) -> dict[str, object]:
    """TIDE summary: base AP (x100), main dAPs (Cls, Loc, Both, Dupe, Bkg, Miss), special dAPs (FP, FN)
    and error counts. Frames as in :mod:`perception_pkg.metrics.boxes2d`."""
    return TideAnalysis(gts, dets, pos_thresh, bg_thresh, max_dets).summary()
