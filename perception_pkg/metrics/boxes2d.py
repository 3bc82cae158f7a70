"""Shared input format for the 2D metrics and a numpy pairwise IoU.

Both COCO AP and TIDE take per-image lists aligned by index:

- ground truth ``gts[i] = {"boxes": (N, 4) xyxy pixels, "labels": (N,) int}``
- detections ``dets[i] = {"boxes": (M, 4) xyxy, "scores": (M,), "labels": (M,) int}``
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
