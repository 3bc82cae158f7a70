"""The batched RTM3D solver as it ran before the analytic-Jacobian rewrite (issue 17), kept verbatim as
the "before" of the equality tests: a vectorised Levenberg-Marquardt over all objects whose Jacobian is
taken by central differences (14 batched residual evaluations per iteration). The run-time solver
(:func:`perception_pkg.geometry3d.solver.solve_boxes3d_arrays`) must reproduce its boxes on the shipped
model's outputs (tests/test_geometry3d_solver.py). No tests here."""

from __future__ import annotations

import numpy as np

from perception_pkg.geometry3d.box3d import box3d_keypoints, project_points
from perception_pkg.geometry3d.solver import CLASS_STD_DIMS, Solution3D, initial_guess, wrap_angle


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
