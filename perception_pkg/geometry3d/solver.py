"""RTM3D keypoint solver: yaw, translation and dimensions of one object from its 9 projected keypoints.

Per object we minimise (SPECS "Detection", rtm3d.txt Sect. 3.2)::

    sum_j c_j ||proj(P, kp_j(yaw, T, D)) - kp^_j||^2
      + sum_k w_d[k] (D^_k - D_k)^2 + w_r wrap(yaw^ - yaw)^2

over yaw, T = bottom-centre location (m) and D = (h, w, l) (m), with scipy's Levenberg-Marquardt.
The keypoint order and frame are those of :mod:`perception_pkg.geometry3d.box3d`.

Why the dimension prior is always on: for P = K[I|0], (k D, k T) projects exactly like (D, T), so the
keypoints alone leave a one-dimensional family of solutions (a rank-6 Jacobian in 7 unknowns). With a
KITTI P2 whose 4th column is non-zero the family is a scaling about the camera centre
C = -M^-1 p4 instead of the origin (T' = C + k (T - C)); either way only a size prior picks the scale.

Weights are in "pixel units": the reprojection term is in px^2, so ``w_d = 1 / sigma_D^2`` means a
one-standard-deviation size error costs as much as one pixel of reprojection error on one keypoint.
The default uses the class standard deviation from SPECS (car std (l, w, h) = (0.41, 0.10, 0.13)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from perception_pkg.geometry3d.box3d import box3d_keypoints, project_points

# Class statistics as (h, w, l), the order the solver and KITTI labels use. SPECS gives car as (l, w, h).
CLASS_MEAN_DIMS: dict[str, tuple[float, float, float]] = {
    "car": (1.53, 1.62, 3.89),
    # Approximate KITTI Pedestrian means (h, w, l), as used by CenterNet's KITTI 3D head; not in SPECS,
    # so a model card should override it with the statistics of its own training data.
    "person": (1.73, 0.67, 0.88),
}
CLASS_STD_DIMS: dict[str, tuple[float, float, float]] = {
    "car": (0.13, 0.10, 0.41),
    "person": (0.11, 0.14, 0.23),  # rough guess, not measured: override from the card
}


@dataclass
class Solution3D:
    """One solved box: ``box`` is ``[x, y, z, h, w, l, rotation_y]`` (see geometry3d.BOX_FIELDS)."""

    box: np.ndarray
    reprojection_rms_px: float  # unweighted RMS over the 9 keypoints, both axes
    cost: float  # final value of the full weighted objective (0.5 * sum of squared residuals)
    success: bool
    nfev: int


def wrap_angle(a: np.ndarray | float) -> np.ndarray:
    """Wrap to [-pi, pi)."""
    return (np.asarray(a, dtype=np.float64) + np.pi) % (2.0 * np.pi) - np.pi


def initial_guess(
    keypoints: np.ndarray,
    P: np.ndarray,
    dims_prior: np.ndarray,
    depth: float | None = None,
    yaw_prior: float | None = None,
) -> np.ndarray:
    """Starting point ``[yaw, x, y, z, h, w, l]``: back-project keypoint 8 (3D centre) at ``depth``.

    Without a depth-head value the depth comes from the prior height and the keypoints' pixel height
    (z ~ f h / pixel_height), which is what the depth head learns to replace.
    """
    kp = np.asarray(keypoints, dtype=np.float64).reshape(9, 2)
    P = np.asarray(P, dtype=np.float64).reshape(3, 4)
    dims = np.asarray(dims_prior, dtype=np.float64)
    if depth is None or not np.isfinite(depth) or depth <= 0:
        pixel_h = max(float(kp[:, 1].max() - kp[:, 1].min()), 1.0)
        depth = P[1, 1] * dims[0] / pixel_h
    # Solve P [X, Y, Z, 1] = s [u, v, 1] for X, Y at the given Z (the centre keypoint's ray).
    u, v = kp[8]
    M, p4 = P[:, :3], P[:, 3]
    A = np.array(
        [[M[0, 0] - u * M[2, 0], M[0, 1] - u * M[2, 1]], [M[1, 0] - v * M[2, 0], M[1, 1] - v * M[2, 1]]]
    )
    rhs = -np.array(
        [
            (M[0, 2] - u * M[2, 2]) * depth + p4[0] - u * p4[2],
            (M[1, 2] - v * M[2, 2]) * depth + p4[1] - v * p4[2],
        ]
    )
    x, y = np.linalg.solve(A, rhs)
    yaw = 0.0 if yaw_prior is None else float(yaw_prior)
    # The centre keypoint sits h/2 above the bottom centre (y down).
    return np.array([yaw, x, y + dims[0] / 2.0, depth, *dims])


def _residuals(
    params: np.ndarray,
    kp_obs: np.ndarray,
    P: np.ndarray,
    sqrt_c: np.ndarray,
    dims_prior: np.ndarray,
    sqrt_wd: np.ndarray,
    yaw_prior: float | None,
    sqrt_wr: float,
) -> np.ndarray:
    yaw, t, d = params[0], params[1:4], params[4:7]
    proj = project_points(P, box3d_keypoints(t, d, yaw))
    res = [((proj - kp_obs) * sqrt_c[:, None]).ravel(), sqrt_wd * (d - dims_prior)]
    if yaw_prior is not None:
        res.append(np.atleast_1d(sqrt_wr * wrap_angle(yaw - yaw_prior)))
    return np.concatenate(res)


def solve_box3d(
    keypoints: np.ndarray,
    P: np.ndarray,
    dims_prior: np.ndarray,
    confidences: np.ndarray | None = None,
    yaw_prior: float | None = None,
    depth: float | None = None,
    init: np.ndarray | None = None,
    w_d: float | np.ndarray | None = None,
    w_r: float = 100.0,
    dims_std: np.ndarray | None = None,
) -> Solution3D:
    """Solve one object.

    keypoints: (9, 2) pixels in the box3d keypoint order. P: 3x4 projection (CameraInfo.p / KITTI P2).
    dims_prior: (3,) (h, w, l) from the dimension head (class mean + residual). confidences: (9,) vertex
    heatmap scores used as the diagonal of Sigma^-1 (default 1). yaw_prior: rotation_y from Multi-Bin.
    depth: depth-head value for the initial guess. init: explicit start ``[yaw, x, y, z, h, w, l]``.
    w_d: prior weight per (h, w, l) in px^2/m^2 (default ``1 / dims_std^2``, car std if not given);
    it must be > 0 (see module docstring). w_r: orientation weight in px^2/rad^2 (used only with yaw_prior).
    """
    kp = np.asarray(keypoints, dtype=np.float64).reshape(9, 2)
    P = np.asarray(P, dtype=np.float64).reshape(3, 4)
    dims_prior = np.asarray(dims_prior, dtype=np.float64).reshape(3)
    conf = np.ones(9) if confidences is None else np.clip(np.asarray(confidences, dtype=np.float64), 0, None)
    if w_d is None:
        std = np.asarray(CLASS_STD_DIMS["car"] if dims_std is None else dims_std, dtype=np.float64)
        w_d = 1.0 / std**2
    wd = np.broadcast_to(np.asarray(w_d, dtype=np.float64), (3,))
    if np.any(wd <= 0):
        raise ValueError("the dimension prior weight must be positive: keypoints alone do not fix scale")
    x0 = initial_guess(kp, P, dims_prior, depth, yaw_prior) if init is None else np.asarray(init, float)
    args = (kp, P, np.sqrt(conf), dims_prior, np.sqrt(wd), yaw_prior, float(np.sqrt(w_r)))
    # 'lm' (MINPACK) because the problem is small, unconstrained and zero-residual in the ideal case,
    # where LM converges quadratically; tolerances are tight so exact data gives ~1e-9 m answers.
    res = least_squares(_residuals, x0, args=args, method="lm", xtol=1e-12, ftol=1e-12, gtol=1e-12)
    yaw = float(wrap_angle(res.x[0]))
    box = np.array([*res.x[1:4], *res.x[4:7], yaw])
    proj = project_points(P, box3d_keypoints(box[0:3], box[3:6], yaw))
    rms = float(np.sqrt(np.mean((proj - kp) ** 2)))
    return Solution3D(
        box=box, reprojection_rms_px=rms, cost=float(res.cost), success=bool(res.success), nfev=int(res.nfev)
    )


def solve_boxes3d(
    keypoints: np.ndarray,
    P: np.ndarray,
    dims_prior: np.ndarray,
    confidences: np.ndarray | None = None,
    yaw_prior: np.ndarray | None = None,
    depth: np.ndarray | None = None,
    dims_std: np.ndarray | None = None,
    **kwargs: object,
) -> list[Solution3D]:
    """Solve N objects: keypoints (N, 9, 2), dims_prior (N, 3), optional (N, 9), (N,), (N,), (N, 3).

    The per-object scipy reference that :func:`solve_boxes3d_batched` (used at run time, 6-9x faster
    for a frame of objects) is tested against. NaN in ``yaw_prior`` / ``depth`` means "not given".
    """
    kps = np.asarray(keypoints, dtype=np.float64).reshape(-1, 9, 2)
    n = len(kps)
    dims = np.broadcast_to(np.asarray(dims_prior, dtype=np.float64), (n, 3))
    out = []
    for i in range(n):
        yp = None if yaw_prior is None or not np.isfinite(yaw_prior[i]) else float(yaw_prior[i])
        dp = None if depth is None or not np.isfinite(depth[i]) else float(depth[i])
        conf = None if confidences is None else np.asarray(confidences)[i]
        std = None if dims_std is None else np.broadcast_to(np.asarray(dims_std, dtype=np.float64), (n, 3))[i]
        out.append(solve_box3d(kps[i], P, dims[i], conf, yp, dp, dims_std=std, **kwargs))  # type: ignore[arg-type]
    return out


def camera_centre(P: np.ndarray) -> np.ndarray:
    """Centre of projection of a 3x4 P in the frame P maps from: C = -M^-1 p4 (not 0 for KITTI P2)."""
    P = np.asarray(P, dtype=np.float64).reshape(3, 4)
    return -np.linalg.solve(P[:, :3], P[:, 3])


def _batched_residuals(
    x: np.ndarray,
    kp: np.ndarray,
    P: np.ndarray,
    sqrt_c: np.ndarray,
    dims_prior: np.ndarray,
    sqrt_wd: np.ndarray,
    yaw_prior: np.ndarray,
    sqrt_wr: np.ndarray,
    depth_prior: np.ndarray,
    sqrt_wz: np.ndarray,
) -> np.ndarray:
    """``_residuals`` for N objects: x (..., N, 7) -> (..., N, 23); a missing prior has weight 0."""
    proj = project_points(P, box3d_keypoints(x[..., 1:4], x[..., 4:7], x[..., 0]))
    rep = ((proj - kp) * sqrt_c[..., None]).reshape(*x.shape[:-1], 18)
    dim = sqrt_wd * (x[..., 4:7] - dims_prior)
    yaw = (sqrt_wr * wrap_angle(x[..., 0] - yaw_prior))[..., None]
    dep = (sqrt_wz * (x[..., 3] - depth_prior))[..., None]  # z of the bottom centre = z of the 3D centre
    return np.concatenate([rep, dim, yaw, dep], axis=-1)


def solve_boxes3d_batched(
    keypoints: np.ndarray,
    P: np.ndarray,
    dims_prior: np.ndarray,
    confidences: np.ndarray | None = None,
    yaw_prior: np.ndarray | None = None,
    depth: np.ndarray | None = None,
    dims_std: np.ndarray | None = None,
    w_r: float = 100.0,
    depth_rel_std: float | None = None,
    max_iter: int = 50,
    tol: float = 1e-10,
) -> list[Solution3D]:
    """The objective of :func:`solve_box3d` for N objects in one vectorised Levenberg-Marquardt.

    Why not scipy per object: a frame has tens of objects and MINPACK's per-call overhead (~1-5 ms each)
    would dominate the detector's latency budget. Here every iteration evaluates all objects together;
    the Jacobian is by central differences (14 batched residual evaluations), the 7x7 damped normal
    equations are solved for all objects at once, and each object keeps its own damping, accepting a
    step only when its cost falls. Same inputs and weights as :func:`solve_boxes3d`.
    """
    kps = np.asarray(keypoints, dtype=np.float64).reshape(-1, 9, 2)
    n = len(kps)
    if n == 0:
        return []
    P = np.asarray(P, dtype=np.float64).reshape(3, 4)
    dims = np.broadcast_to(np.asarray(dims_prior, dtype=np.float64), (n, 3)).copy()
    conf = np.ones((n, 9)) if confidences is None else np.clip(np.asarray(confidences, float), 0, None)
    std = np.broadcast_to(
        np.asarray(CLASS_STD_DIMS["car"] if dims_std is None else dims_std, dtype=np.float64), (n, 3)
    )
    sqrt_wd = 1.0 / std
    yp = np.full(n, np.nan) if yaw_prior is None else np.asarray(yaw_prior, dtype=np.float64).reshape(n)
    has_yaw = np.isfinite(yp)
    sqrt_wr = np.where(has_yaw, np.sqrt(w_r), 0.0)
    yp = np.where(has_yaw, yp, 0.0)
    dep = np.full(n, np.nan) if depth is None else np.asarray(depth, dtype=np.float64).reshape(n)
    use_z = np.isfinite(dep) & (dep > 0) & (depth_rel_std is not None)
    sqrt_wz = np.where(use_z, 1.0 / (np.where(use_z, dep, 1.0) * (depth_rel_std or 1.0)), 0.0)
    x = np.stack(
        [
            initial_guess(kps[i], P, dims[i], float(dep[i]), float(yp[i]) if has_yaw[i] else None)
            for i in range(n)
        ]
    )
    args = (kps, P, np.sqrt(conf), dims, sqrt_wd, yp, sqrt_wr, np.where(use_z, dep, 0.0), sqrt_wz)
    r = _batched_residuals(x, *args)
    cost = 0.5 * np.sum(r**2, axis=1)
    lam = np.full(n, 1e-3)
    active = np.ones(n, bool)
    nfev = np.ones(n, int)
    eye = np.eye(7)
    for _ in range(max_iter):
        if not active.any():
            break
        a = np.flatnonzero(active)
        xa = x[a]
        h = 1e-6 * np.maximum(1.0, np.abs(xa))  # (A, 7)
        steps = eye[:, None, :] * h[None]  # (7, A, 7): perturb one parameter per slice
        sub = tuple(v[a] if isinstance(v, np.ndarray) and v.shape[:1] == (n,) else v for v in args)
        rp = _batched_residuals(xa[None] + steps, *sub)
        rm = _batched_residuals(xa[None] - steps, *sub)
        J = ((rp - rm) / (2 * h.T[..., None])).transpose(1, 2, 0)  # (A, 22, 7)
        nfev[a] += 14
        JtJ = J.transpose(0, 2, 1) @ J
        g = np.einsum("aij,ai->aj", J, r[a])
        diag = np.einsum("aii->ai", JtJ)
        A = JtJ + lam[a, None, None] * (eye * diag[:, None, :] + 1e-12 * eye)
        dx = -np.linalg.solve(A, g[..., None])[..., 0]
        x_new = xa + dx
        r_new = _batched_residuals(x_new, *sub)
        nfev[a] += 1
        c_new = 0.5 * np.sum(r_new**2, axis=1)
        better = np.isfinite(c_new) & (c_new < cost[a])
        good = a[better]
        x[good], r[good] = x_new[better], r_new[better]
        rel = (cost[good] - c_new[better]) / np.maximum(cost[good], 1e-300)
        cost[good] = c_new[better]
        lam[good] = np.maximum(lam[good] / 3.0, 1e-12)
        lam[a[~better]] *= 4.0
        small_step = np.max(np.abs(dx) / np.maximum(1.0, np.abs(xa)), axis=1) < tol
        done = np.zeros(n, bool)
        done[good[rel < tol]] = True
        done[a[small_step]] = True
        done[a[lam[a] > 1e10]] = True
        active &= ~done
    out = []
    for i in range(n):
        yaw = float(wrap_angle(x[i, 0]))
        box = np.array([*x[i, 1:4], *x[i, 4:7], yaw])
        proj = project_points(P, box3d_keypoints(box[0:3], box[3:6], yaw))
        rms = float(np.sqrt(np.mean((proj - kps[i]) ** 2)))
        ok = bool(np.all(np.isfinite(box)) and np.all(box[3:6] > 0))
        out.append(
            Solution3D(box=box, reprojection_rms_px=rms, cost=float(cost[i]), success=ok, nfev=int(nfev[i]))
        )
    return out
