"""Annotated images of detections: 2D boxes with labels, and projected 3D box wireframes.

The same per-class colours (:mod:`.palette`) are used by the RViz markers (:mod:`.markers`), so a
box has one colour in the debug image and in 3D. Box geometry is computed for all boxes at once
(corner projection, edge lists); OpenCV then draws every box of one class in a single ``polylines``
call. Only the label text is drawn per box (OpenCV has no batched text).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import NDArray

from perception_pkg.geometry3d.box3d import boxes_to_keypoints, project_points
from perception_pkg.geometry3d.camera import projection_matrix
from perception_pkg.viz.palette import class_colours

if TYPE_CHECKING:
    from perception_pkg.detection.detector import DetectionResult
    from perception_pkg.geometry3d.camera import CameraModel

# The 12 edges of a box in the corner order of perception_pkg.geometry3d.box3d (0-3 bottom, 4-7 top,
# 0/1/4/5 the front face at +l/2), plus a cross on the front face so the heading is visible.
BOX_EDGES = np.array(
    [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]]
)
FRONT_CROSS = np.array([[0, 5], [1, 4]])
WIREFRAME_EDGES = np.concatenate([BOX_EDGES, FRONT_CROSS])

# 3D boxes with a corner closer than this to the camera plane are not drawn: the projection of a
# point near or behind the camera is meaningless, and we do not clip edges against the near plane.
_MIN_DEPTH_M = 0.1


def _bgr(rgb: NDArray[np.uint8]) -> tuple[int, int, int]:
    return int(rgb[2]), int(rgb[1]), int(rgb[0])


def wireframe_pixels(
    boxes3d: NDArray[np.float64], camera: CameraModel
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Projected wireframe segments of KITTI boxes: ((N, E, 2, 2) pixel endpoints, (N,) drawable).

    A box is drawable when all its values are finite and all its corners lie in front of the camera.
    """
    boxes = np.asarray(boxes3d, dtype=np.float64).reshape(-1, 7)
    finite = np.all(np.isfinite(boxes), axis=1)
    corners = boxes_to_keypoints(np.where(finite[:, None], boxes, 0.0))[:, :8]  # (N, 8, 3)
    ok = finite & np.all(corners[..., 2] > _MIN_DEPTH_M, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        px = project_points(projection_matrix(camera), corners)  # (N, 8, 2)
    return px[:, WIREFRAME_EDGES], ok


def draw_detections(
    image_bgr: NDArray[np.uint8],
    result: DetectionResult,
    camera: CameraModel | None = None,
    *,
    thickness: int = 2,
    font_scale: float = 0.5,
    labels: bool = True,
    copy: bool = True,
) -> NDArray[np.uint8]:
    """``image_bgr`` with the detections drawn: 2D boxes, "class score" labels, and 3D wireframes
    where ``result.boxes3d`` has a finite row and ``camera`` is given.

    With ``copy`` (the default) the input is left untouched; a message view is often read-only, and a
    caller may still need the clean frame. ``copy=False`` draws in place (the array must be writable).
    """
    out = np.array(image_bgr, dtype=np.uint8, copy=True) if copy else image_bgr
    if out.ndim != 3 or out.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 BGR image, got shape {out.shape}")
    dets = result.detections
    n = len(dets)
    if n == 0:
        return out
    cids = dets.class_ids
    colours = class_colours(cids)
    # cv2 draws integer coordinates; rounding (not truncation) keeps boxes centred on the pixel grid
    boxes = np.rint(np.nan_to_num(dets.boxes, nan=0.0)).astype(np.int32)
    quads = boxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(n, 4, 2)
    segs = ok = None
    if result.boxes3d is not None and camera is not None:
        px, ok = wireframe_pixels(result.boxes3d, camera)
        segs = np.rint(np.where(ok[:, None, None, None], px, 0.0)).astype(np.int32)
    # LINE_8, not anti-aliased: cheaper, and edges keep the exact class colour (tests and eyes rely on it)
    for cid in np.unique(cids).tolist():
        rows = np.flatnonzero(cids == cid)
        colour = _bgr(colours[rows[0]])
        cv2.polylines(out, list(quads[rows]), True, colour, thickness, cv2.LINE_8)
        if segs is not None and ok is not None:
            rows3 = rows[ok[rows]]
            if rows3.size:
                lines = segs[rows3].reshape(-1, 2, 2)  # every edge of every box of this class
                cv2.polylines(out, list(lines), False, colour, max(1, thickness - 1), cv2.LINE_8)
    if labels:
        names = result.labels()
        for i in range(n):
            text = f"{names[i]} {dets.scores[i]:.2f}"
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
            x0, y0 = int(boxes[i, 0]), int(boxes[i, 1])
            y_text = y0 - 3 if y0 - th - base - 3 >= 0 else y0 + th + 3  # inside the box at the top edge
            colour = _bgr(colours[i])
            cv2.rectangle(out, (x0, y_text - th - 2), (x0 + tw + 2, y_text + base - 1), colour, cv2.FILLED)
            cv2.putText(
                out,
                text,
                (x0 + 1, y_text),
                cv2.FONT_HERSHEY_SIMPLEX,
                font_scale,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
    return out
