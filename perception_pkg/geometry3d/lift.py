"""Decoded 9-keypoint detections (RTM3D) + a camera -> 3D boxes, one solve per object.

Each detection's 9 projected box vertices (:mod:`.box3d` order), its dimension prior and, where the
decoder gives them, its observation angle and depth are handed to the batched solver
(:func:`.solver.solve_boxes3d_arrays`) against the camera's projection matrix. Boxes come back in the
camera optical frame, KITTI layout ``[x, y, z, h, w, l, rotation_y]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from perception_pkg.geometry3d.camera import CameraModel, projection_matrix
from perception_pkg.geometry3d.multibin import alpha_to_rotation_y
from perception_pkg.geometry3d.solver import solve_boxes3d_arrays


class KeypointDetections(Protocol):
    """What the lift reads of a detection set (``decoders.types.Detections`` has it; this floor is below
    the decoders, so it names the shape rather than importing the class)."""

    @property
    def keypoints(self) -> NDArray[np.float64] | None: ...

    @property
    def extras(self) -> Mapping[str, NDArray[np.float64]]: ...

    def __len__(self) -> int: ...


def lift_boxes3d(
    dets: KeypointDetections, camera: CameraModel, depth_rel_std: float | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Solve a 3D box per detection from its 9 keypoints; (N, 7) boxes and (N,) reprojection RMS (px).

    Rows without keypoints, dimension prior, or a converged solve stay NaN. Keypoints are in the stack's
    continuous pixel frame (pixel j spans [j, j + 1)); CameraInfo's K and P follow OpenCV, where pixel j
    is centred on j, hence the half-pixel shift before solving.
    """
    n = len(dets)
    boxes = np.full((n, 7), np.nan)
    rms = np.full(n, np.nan)
    kp = dets.keypoints
    dims = dets.extras.get("dimensions")
    if n == 0 or kp is None or kp.shape[1] != 9 or dims is None:
        return boxes, rms
    finite = np.logical_and.reduce(np.isfinite(dims), axis=1)
    finite &= np.logical_and.reduce(np.isfinite(kp[..., :2]), axis=(1, 2))
    rows = np.flatnonzero(finite)
    if rows.size == 0:
        return boxes, rms
    P = projection_matrix(camera)
    kp = kp[rows] if rows.size < n else kp
    xy = kp[..., :2] - 0.5
    yaw = None
    alpha = dets.extras.get("alpha")
    if alpha is not None:
        # rotation_y = alpha + the viewing ray's angle, taken at the 3D-centre keypoint's column
        ray = (xy[:, 8, 0] - P[0, 2]) / P[0, 0]
        yaw = alpha_to_rotation_y(alpha[rows], ray, 1.0)
    depth = dets.extras.get("depth")
    std = dets.extras.get("dimension_std")
    sol = solve_boxes3d_arrays(
        xy,
        P,
        dims[rows],
        confidences=np.maximum(kp[..., 2], 1e-3),
        yaw_prior=yaw,
        depth=None if depth is None else depth[rows],
        dims_std=None if std is None else std[rows],
        depth_rel_std=depth_rel_std,
        # at run time half a millimetre is plenty: half the iterations of the solver's exact default
        tol=1e-7,
        max_iter=30,
    )
    ok = sol.success & (sol.boxes[:, 2] > 0)  # success already means finite with positive sizes
    boxes[rows[ok]] = sol.boxes[ok]
    rms[rows[ok]] = sol.reprojection_rms_px[ok]
    return boxes, rms
