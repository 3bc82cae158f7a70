"""Shared input format for the 2D metrics and a numpy pairwise IoU.

Both COCO AP and TIDE take per-image lists aligned by index:

- ground truth ``gts[i] = {"boxes": (N, 4) xyxy pixels, "labels": (N,) int}``
- detections ``dets[i] = {"boxes": (M, 4) xyxy, "scores": (M,), "labels": (M,) int}``

A ground-truth frame may also carry ``"ignore": (N,) bool``: objects too small or too hidden to be fair.
An ignored GT is neither a positive nor a miss, and a detection that matches no kept GT but covers an
ignored GT of its class (intersection over the *detection's* area >= the IoU threshold, pycocotools'
rule for ``iscrowd`` boxes) is dropped: neither true nor false positive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Frame = Mapping[str, np.ndarray]


def as_arrays(frame: Frame, with_scores: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes (N, 4) float64, labels (N,) int64, scores (N,) float64; ones for ground truth)."""
    boxes = np.asarray(frame.get("boxes", np.zeros((0, 4))), dtype=np.float64).reshape(-1, 4)
    labels = np.asarray(frame.get("labels", np.zeros(0)), dtype=np.int64).reshape(-1)
    if with_scores:
        scores = np.asarray(frame["scores"], dtype=np.float64).reshape(-1)
    else:
        scores = np.ones(len(boxes))
    if not (len(boxes) == len(labels) == len(scores)):
        raise ValueError(f"boxes/labels/scores lengths differ: {len(boxes)}, {len(labels)}, {len(scores)}")
    return boxes, labels, scores


def ignore_flags(frame: Frame, n: int) -> np.ndarray:
    """``frame["ignore"]`` as an (n,) bool array; all False when the frame has none."""
    if "ignore" not in frame or frame["ignore"] is None:
        return np.zeros(n, bool)
    flags = np.asarray(frame["ignore"], dtype=bool).reshape(-1)
    if len(flags) != n:
        raise ValueError(f"ignore has {len(flags)} flags for {n} ground-truth boxes")
    return flags


def ioa_xyxy(dets: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Pairwise ``(N, M)`` intersection over the detection's area: pycocotools' IoU for crowd regions."""
    dets = np.asarray(dets, dtype=np.float64).reshape(-1, 4)
    regions = np.asarray(regions, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(
        np.minimum(dets[:, None, 2], regions[None, :, 2]) - np.maximum(dets[:, None, 0], regions[None, :, 0]),
        0,
        None,
    )
    ih = np.clip(
        np.minimum(dets[:, None, 3], regions[None, :, 3]) - np.maximum(dets[:, None, 1], regions[None, :, 1]),
        0,
        None,
    )
    area = ((dets[:, 2] - dets[:, 0]) * (dets[:, 3] - dets[:, 1]))[:, None]
    return np.where(area > 0, iw * ih / np.where(area > 0, area, 1.0), 0.0)


def iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``(N, M)`` of xyxy boxes, continuous coordinates (no +1), as pycocotools computes it."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def check_aligned(gts: Sequence[Frame], dets: Sequence[Frame]) -> None:
    if len(gts) != len(dets):
        raise ValueError(f"one detection frame per ground-truth frame: {len(gts)} vs {len(dets)}")
