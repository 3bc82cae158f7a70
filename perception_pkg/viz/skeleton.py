"""COCO-17 skeletons drawn onto a BGR image (numpy + OpenCV, no ROS): the pose node's debug image.

Coordinates are the stack's (pixel column ``j`` spans ``[j, j + 1)``, see
``perception_pkg.preprocess.affine``); OpenCV draws with pixel centres on integers, so points are shifted
by ``-PIXEL_SHIFT`` (-0.5) and drawn with 2 fractional bits (``shift=2``) to keep quarter-pixel
placement. Limbs are COCO's (:data:`perception_pkg.pose.coco17.SKELETON`).
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from perception_pkg.pose.coco17 import NUM_KEYPOINTS, SKELETON
from perception_pkg.preprocess.affine import PIXEL_SHIFT

_SKELETON = np.asarray(SKELETON, dtype=np.intp)
_SHIFT = 2  # fractional bits for cv2 drawing
# limbs by side (left keypoints have odd COCO indices >= 1): left blue-ish, right orange, centre green
_LEFT, _RIGHT, _CENTRE = (255, 128, 0), (0, 128, 255), (0, 220, 0)


def _limb_colours() -> list[tuple[int, int, int]]:
    out = []
    for a, b in SKELETON:
        left = a % 2 == 1 and b % 2 == 1
        right = a % 2 == 0 and b % 2 == 0 and a > 0 and b > 0
        out.append(_LEFT if left else _RIGHT if right else _CENTRE)
    return out


_COLOURS = _limb_colours()


def draw_skeletons(
    image_bgr: NDArray[np.uint8],
    keypoints: NDArray,
    scores: NDArray,
    boxes: NDArray | None = None,
    *,
    threshold: float = 0.0,
    thickness: int = 2,
    copy: bool = True,
) -> NDArray[np.uint8]:
    """``image_bgr`` with limbs (both ends scoring >= ``threshold``), keypoints and optional boxes.

    ``keypoints`` (N, 17, 2), ``scores`` (N, 17), ``boxes`` (N, 4) xyxy. With ``copy`` (the default) the
    input stays untouched (message views are often read-only); ``copy=False`` draws in place.
    """
    out = np.array(image_bgr, dtype=np.uint8, copy=True) if copy else image_bgr
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2)
    ok = (np.asarray(scores).reshape(kp.shape[:2]) >= threshold) & np.isfinite(kp).all(-1)
    # fixed-point pixel-centre coordinates, clipped so a wild keypoint cannot overflow int32 in OpenCV
    fp = np.round((np.clip(np.nan_to_num(kp), -1e5, 1e5) - PIXEL_SHIFT) * (1 << _SHIFT)).astype(np.int32)
    limb_ok = ok[:, _SKELETON[:, 0]] & ok[:, _SKELETON[:, 1]]  # (N, 19)
    segments = fp[:, _SKELETON]  # (N, 19, 2, 2)
    # one polylines call per limb type: all people's copies of that limb at once
    for limb, colour in enumerate(_COLOURS):
        rows = np.flatnonzero(limb_ok[:, limb])
        if rows.size:
            cv2.polylines(out, list(segments[rows, limb]), False, colour, thickness, cv2.LINE_AA, _SHIFT)
    radius = max(2, thickness + 1) << _SHIFT
    for x, y in fp[ok].tolist():
        cv2.circle(out, (x, y), radius, (0, 0, 255), -1, cv2.LINE_AA, _SHIFT)
    if boxes is not None:
        b = np.round(
            (np.asarray(boxes, dtype=np.float64).reshape(-1, 4) - PIXEL_SHIFT) * (1 << _SHIFT)
        ).astype(np.int32)
        for x0, y0, x1, y1 in b.tolist():
            cv2.rectangle(out, (x0, y0), (x1, y1), (200, 200, 200), 1, cv2.LINE_AA, _SHIFT)
    return out
