"""Class-aware non-maximum suppression and box IoU.

NMS runs in OpenCV (cv2.dnn.NMSBoxesBatched, C++ greedy NMS); tests check it against a plain greedy
reference: same kept set, same order, suppression when IoU > threshold, ties broken by input order.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray


def box_iou(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """Pairwise IoU of xyxy boxes: (N, 4) x (M, 4) -> (N, M). Empty boxes have IoU 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    w = (np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])).clip(0)
    h = (np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])).clip(0)
    inter = w * h
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(
    boxes: ArrayLike,
    scores: ArrayLike,
    iou_threshold: float,
    class_ids: ArrayLike | None = None,
    max_detections: int | None = None,
) -> NDArray[np.int64]:
    """Indices of the boxes greedy NMS keeps, by descending score.

    With ``class_ids`` only boxes of the same class suppress each other. No score threshold here:
    decoders filter scores first (and cap candidates) so this sees only real candidates.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if b.shape[0] != s.shape[0]:
        raise ValueError(f"{b.shape[0]} boxes but {s.shape[0]} scores")
    if b.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    xywh = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)
    top_k = int(max_detections) if max_detections else 0
    # OpenCV wants scores > a threshold >= 0 and compares them in float32; greedy NMS only needs the
    # order, so hand it exact ranks (stable: ties keep input order) instead of the scores themselves
    n = s.shape[0]
    order = np.argsort(-s, kind="stable")
    rank_score = np.empty(n, dtype=np.float32)
    rank_score[order] = np.arange(n, 0, -1, dtype=np.float32)
    if class_ids is None:
        keep = cv2.dnn.NMSBoxes(xywh, rank_score, 0.0, float(iou_threshold), top_k=top_k)
    else:
        c = np.asarray(class_ids).reshape(-1).astype(np.int32)
        keep = cv2.dnn.NMSBoxesBatched(xywh, rank_score, c, 0.0, float(iou_threshold), top_k=top_k)
    keep = np.asarray(keep, dtype=np.int64).reshape(-1)
    keep = keep[np.argsort(-rank_score[keep])]
    return keep[:top_k] if top_k else keep
