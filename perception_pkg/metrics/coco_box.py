"""COCO box AP through pycocotools, from numpy frames (see :mod:`.boxes2d`) to a plain dict."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np

from perception_pkg.metrics.boxes2d import Frame, as_arrays, check_aligned, ignore_flags

_STAT_NAMES = (
    "AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
    "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large",
)  # fmt: skip


def coco_box_ap(
    gts: Sequence[Frame],
    dets: Sequence[Frame],
    class_names: Sequence[str] | None = None,
    max_dets: int = 100,
) -> dict[str, object]:
    """COCO bbox evaluation. Returns the 12 summary numbers (0..1; -1 where COCO has no GT for a bucket),
    ``per_class`` {name: {"AP", "AP50"}} and ``pr50`` {name: 101 precisions at recall 0..1, IoU 0.5}.

    Class ids are the ``labels`` values; ``class_names[label]`` names them (else ``str(label)``).
    Ground truth flagged ``ignore`` goes to pycocotools as ``iscrowd = 1``, which is exactly the rule
    in :mod:`.boxes2d`: never a positive, and detections it absorbs are neither TP nor FP. ``num_gt``
    counts the kept ground truth, ``num_ignored`` the rest.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    check_aligned(gts, dets)
    images, anns, rows = [], [], []
    labels_seen: set[int] = set()
    num_ignored = 0
    for img_id, (gt, det) in enumerate(zip(gts, dets, strict=True)):
        # pycocotools wants image sizes only for segmentation; boxes need an entry per image
        images.append({"id": img_id, "width": 0, "height": 0})
        boxes, labels, _ = as_arrays(gt, with_scores=False)
        ignore = ignore_flags(gt, len(boxes))
        num_ignored += int(ignore.sum())
        for b, c, ig in zip(boxes, labels, ignore, strict=True):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append(
                {"id": len(anns) + 1, "image_id": img_id, "category_id": int(c), "iscrowd": int(ig),
                 "bbox": [float(b[0]), float(b[1]), float(w), float(h)], "area": float(w * h)}
            )  # fmt: skip
            labels_seen.add(int(c))
        dboxes, dlabels, dscores = as_arrays(det, with_scores=True)
        for b, c, s in zip(dboxes, dlabels, dscores, strict=True):
            rows.append([img_id, b[0], b[1], b[2] - b[0], b[3] - b[1], s, c])
            labels_seen.add(int(c))
    cats = sorted(labels_seen)

    def name(c: int) -> str:
        return class_names[c] if class_names is not None and 0 <= c < len(class_names) else str(c)

    empty: dict[str, object] = {k: 0.0 for k in _STAT_NAMES}
    num_gt = len(anns) - num_ignored
    empty.update(per_class={}, pr50={}, num_gt=num_gt, num_ignored=num_ignored, num_det=len(rows))
    if not rows or not num_gt:
        return empty
    coco_gt = COCO()
    coco_gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": c} for c in cats]}
    # pycocotools prints progress to stdout; a library must not, so swallow it
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(np.asarray(rows, dtype=np.float64))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    out: dict[str, object] = {k: float(v) for k, v in zip(_STAT_NAMES, ev.stats, strict=True)}
    prec = ev.eval["precision"]  # [T=10 IoUs, R=101 recalls, K classes, A=4 areas, M=3 maxDets]
    per_class, pr50 = {}, {}
    for k, c in enumerate(ev.params.catIds):
        p_all, p50 = prec[:, :, k, 0, -1], prec[0, :, k, 0, -1]
        if np.all(p_all < 0):  # no GT of this class: COCO leaves it out of the mean too
            continue
        per_class[name(c)] = {"AP": float(p_all[p_all > -1].mean()), "AP50": float(p50[p50 > -1].mean())}
        pr50[name(c)] = np.clip(p50, 0, None).tolist()
    out.update(per_class=per_class, pr50=pr50, num_gt=num_gt, num_ignored=num_ignored, num_det=len(rows))
    return out
