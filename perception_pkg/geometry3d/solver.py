"""RTM3D keypoint solver: yaw, translation and dimensions of objects from their 9 projected keypoints.

Per object we minimise (SPECS "Detection", rtm3d.txt Sect. 3.2)::

    sum_j c_j ||proj(P, kp_j(yaw, T, D)) - kp^_j||^2
      + sum_k w_d[k] (D^_k - D_k)^2 + w_r wrap(yaw^ - yaw)^2 [+ w_z (z^ - z)^2]

over yaw, T = bottom-centre location (m) and D = (h, w, l) (m). The keypoint order and frame are those
of :mod:`perception_pkg.geometry3d.box3d`. The last term is ours and optional: the depth head as a soft
prior on z with weight ``w_z = 1 / (depth_rel_std z^)^2`` (off unless a card asks for it).

Two implementations of the same objective:

- :func:`solve_box3d` / :func:`solve_boxes3d`: scipy's MINPACK Levenberg-Marquardt per object with tight
  tolerances, the **reference** (the exact minimum to ~1e-9 m);
- :func:`solve_boxes3d_arrays` (:func:`solve_boxes3d_batched` for a list of :class:`Solution3D`): all
  objects of a frame in one vectorised LM in numpy with the analytic Jacobian, what the detector runs.
  tests/test_geometry3d_solver.py holds it to the reference (tight tolerance) and to the central-difference
  batched solver it replaced (the run-time tolerance, on the shipped model's outputs).

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
from functools import lru_cache

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
    depth_prior: float | None = None,
    sqrt_wz: float = 0.0,
) -> np.ndarray:
    yaw, t, d = params[0], params[1:4], params[4:7]
    proj = project_points(P, box3d_keypoints(t, d, yaw))
    res = [((proj - kp_obs) * sqrt_c[:, None]).ravel(), sqrt_wd * (d - dims_prior)]
    if yaw_prior is not None:
        res.append(np.atleast_1d(sqrt_wr * wrap_angle(yaw - yaw_prior)))
    if depth_prior is not None:  # z of the bottom centre = z of the 3D centre
        res.append(np.atleast_1d(sqrt_wz * (t[2] - depth_prior)))
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
    depth_rel_std: float | None = None,
) -> Solution3D:
    """Solve one object (the reference: scipy LM with tight tolerances).

    keypoints: (9, 2) pixels in the box3d keypoint order. P: 3x4 projection (CameraInfo.p / KITTI P2).
    dims_prior: (3,) (h, w, l) from the dimension head (class mean + residual). confidences: (9,) vertex
    heatmap scores used as the diagonal of Sigma^-1 (default 1). yaw_prior: rotation_y from Multi-Bin.
    depth: depth-head value for the initial guess. init: explicit start ``[yaw, x, y, z, h, w, l]``.
    w_d: prior weight per (h, w, l) in px^2/m^2 (default ``1 / dims_std^2``, car std if not given);
    it must be > 0 (see module docstring). w_r: orientation weight in px^2/rad^2 (used only with yaw_prior).
    depth_rel_std: with a positive ``depth``, also a soft prior on z of that relative standard deviation.
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
    use_z = depth_rel_std is not None and depth is not None and np.isfinite(depth) and depth > 0
    z_prior = float(depth) if use_z else None  # type: ignore[arg-type]
    sqrt_wz = 1.0 / (z_prior * depth_rel_std) if use_z else 0.0  # type: ignore[operator]
    args = (kp, P, np.sqrt(conf), dims_prior, np.sqrt(wd), yaw_prior, float(np.sqrt(w_r)), z_prior, sqrt_wz)
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

    The per-object scipy reference that :func:`solve_boxes3d_arrays` (used at run time, ~100x faster
    for a frame of objects) is tested against. NaN in ``yaw_prior`` / ``depth`` means "not given";
    keyword arguments (``w_r``, ``depth_rel_std``, ...) go to :func:`solve_box3d`.
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


# --- the run-time solver: all objects in one vectorised Levenberg-Marquardt ---------------------------


@dataclass(frozen=True)
class BatchSolution:
    """N solved boxes as arrays (what :func:`solve_boxes3d_arrays` returns; no per-object objects).

    ``boxes`` (N, 7) ``[x, y, z, h, w, l, rotation_y]``, ``reprojection_rms_px`` (N,), ``cost`` (N,)
    (0.5 * the weighted sum of squares, as :class:`Solution3D`), ``success`` (N,) finite with positive
    sizes, ``nfev`` (N,) residual-and-Jacobian evaluations, ``iterations`` (N,) LM steps tried.
    """

    boxes: np.ndarray
    reprojection_rms_px: np.ndarray
    cost: np.ndarray
    success: np.ndarray
    nfev: np.ndarray
    iterations: np.ndarray

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def solutions(self) -> list[Solution3D]:
        return [
            Solution3D(
                box=self.boxes[i].copy(),
                reprojection_rms_px=float(self.reprojection_rms_px[i]),
                cost=float(self.cost[i]),
                success=bool(self.success[i]),
                nfev=int(self.nfev[i]),
            )
            for i in range(len(self))
        ]


def initial_guesses(
    keypoints: np.ndarray, P: np.ndarray, dims_prior: np.ndarray, depth: np.ndarray, yaw_prior: np.ndarray
) -> np.ndarray:
    """:func:`initial_guess` for N objects at once: (N, 9, 2), (3, 4), (N, 3), (N,), (N,) -> (N, 7).

    NaN (or a non-positive value) in ``depth`` means "from the prior height", NaN in ``yaw_prior`` 0.
    The 2x2 solve for the centre keypoint's ray is written out (Cramer's rule).
    """
    kp = keypoints
    M, p4 = P[:, :3], P[:, 3]
    dep = np.asarray(depth, dtype=np.float64)
    given = np.isfinite(dep) & (dep > 0)
    ys = kp[:, :, 1]
    pixel_h = np.maximum(np.maximum.reduce(ys, axis=1) - np.minimum.reduce(ys, axis=1), 1.0)
    z = np.where(given, dep, P[1, 1] * dims_prior[:, 0] / pixel_h)
    u, v = kp[:, 8, 0], kp[:, 8, 1]
    a00, a01 = M[0, 0] - u * M[2, 0], M[0, 1] - u * M[2, 1]
    a10, a11 = M[1, 0] - v * M[2, 0], M[1, 1] - v * M[2, 1]
    r0 = -((M[0, 2] - u * M[2, 2]) * z + p4[0] - u * p4[2])
    r1 = -((M[1, 2] - v * M[2, 2]) * z + p4[1] - v * p4[2])
    det = a00 * a11 - a01 * a10
    x = (r0 * a11 - a01 * r1) / det
    y = (a00 * r1 - a10 * r0) / det
    out = np.empty((len(kp), 7))
    out[:, 0] = np.where(np.isfinite(yaw_prior), yaw_prior, 0.0)
    out[:, 1] = x
    out[:, 2] = y + dims_prior[:, 0] / 2.0
    out[:, 3] = z
    out[:, 4:7] = dims_prior
    return out


def _projection_tables(P: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_projection_tables_of` for a 3x4 P, cached (a camera's P rarely changes); read-only."""
    return _projection_tables_of(P.tobytes())


@lru_cache(maxsize=16)
def _projection_tables_of(p_bytes: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The projection of the 9 keypoints as one linear map of ``q = [tx, ty, tz, h, c l, s l, c w, s w, 1]``
    (c, s = cos, sin of the yaw): ``hom = q @ Bt``, (9,) @ (9, 27) -> the homogeneous image points
    axis-major, ``hom.reshape(3, 9)[i, k]`` = axis i of keypoint k.

    Keypoint k in the camera frame is ``X = ux_k (c l) + uz_k (s w) + tx``, ``Y = uy_k h + ty``,
    ``Z = -ux_k (s l) + uz_k (c w) + tz`` (box3d's table and rotation), so ``hom_k = M [X Y Z] + p4`` is
    linear in q. Returns Bt and the tables that give the derivatives of hom in the same form:
    ``d hom / d yaw = q[4:8] @ B_yaw``, ``[d hom / d w, d hom / d l] = [c, s] @ B_wl``; the derivatives
    in tx, ty, tz, h are the constant rows ``Bt[0:4]``.
    """
    P = np.frombuffer(p_bytes, dtype=np.float64).reshape(3, 4)
    M, p4 = P[:, :3], P[:, 3]
    G = np.zeros((3, 9, 9))  # camera axis, keypoint, q component
    G[0, :, 0] = G[1, :, 1] = G[2, :, 2] = 1.0
    G[1, :, 3] = _UNIT_Y
    G[0, :, 4], G[2, :, 5] = _UNIT_X, -_UNIT_X
    G[2, :, 6], G[0, :, 7] = _UNIT_Z, _UNIT_Z
    B = np.einsum("ia,akj->ikj", M, G)  # (3, 9, 9): image axis, keypoint, q component
    B[:, :, 8] = p4[:, None]
    Bt = np.ascontiguousarray(B.reshape(27, 9).T)
    # d/dyaw of (c l, s l, c w, s w) is (-s l, c l, -s w, c w): rows permuted with signs
    B_yaw = np.stack([Bt[5], -Bt[4], Bt[7], -Bt[6]])
    B_wl = np.stack([np.concatenate([Bt[6], Bt[4]]), np.concatenate([Bt[7], Bt[5]])])  # (2, 54)
    tables = (Bt, B_yaw, B_wl, np.ascontiguousarray(Bt[0:4]))
    for t in tables:
        t.flags.writeable = False
    return tables


# the object-frame keypoint table of box3d (x per unit length, y per unit height, z per unit width)
_UNIT_X, _UNIT_Y, _UNIT_Z = box3d_keypoints(np.zeros(3), np.ones(3), 0.0).T
_YAW_SHIFT = np.array([[0.0, 0.5 * np.pi]])  # cos(yaw - pi/2) = sin(yaw): both from one np.cos
_TWO_PI = 2.0 * np.pi


class _Problem:
    """The objective of :func:`solve_box3d` for N objects, with its analytic Jacobian.

    Residuals per object, 25 in all: 18 weighted reprojection terms (u of the 9 keypoints, then v, times
    sqrt(c_k)), then the priors in parameter order (yaw: sqrt(w_r) wrap(yaw - yaw^); z: sqrt(w_z) (z - z^);
    h, w, l: sqrt(w_d) (D - D^); x, y: none, weight 0). The prior part is linear with unit slope per
    parameter, so its block of J is the constant diag(w7).

    One buffer ``self.b`` (N, 8, 25) holds J^T in rows 0-6 and the residuals in row 7, so a single batched
    product ``b b^T`` (N, 8, 8) gives J^T J (``[:7, :7]``), J^T r (``[:7, 7]``) and r.r (``[7, 7]``, twice
    the cost). It is rewritten by every :meth:`evaluate`; what that returns is fresh.
    """

    def __init__(
        self,
        kp: np.ndarray,
        P: np.ndarray,
        sqrt_c: np.ndarray,
        prior7: np.ndarray,
        w7: np.ndarray,
    ) -> None:
        n = len(kp)
        self.n = n
        self.kp_t = np.ascontiguousarray(kp.transpose(0, 2, 1))  # (N, 2, 9)
        self.sqrt_c = sqrt_c[:, None, :]  # (N, 1, 9)
        self.prior7 = prior7
        self.w7 = w7
        self.Bt, self.B_yaw, self.B_wl, fixed = _projection_tables(P)
        self.q = np.zeros((n, 9))
        self.q[:, 8] = 1.0
        # (N, 7, 27): d hom / d param; rows tx, ty, tz, h never change
        self.dhom = np.empty((n, 7, 27))
        self.dhom[:, 1:5] = fixed
        self.b = np.zeros((n, 8, 25))
        self.b[:, :7, 18:] = w7[:, :, None] * np.eye(7)
        # views into the buffer (reshapes of slices whose last axis is contiguous never copy)
        self.jt_rep = self.b[:, :7, :18].reshape(n, 7, 2, 9)
        self.r_rep = self.b[:, 7, :18].reshape(n, 2, 9)
        self.r_prior = self.b[:, 7, 18:]
        self._tmp = np.empty((n, 7, 2, 9))

    def project(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The 9 keypoints of boxes x (N, 7) in the image: (cos, sin) of the yaw (N, 2), the homogeneous
        depth (N, 9) and the pixels (N, 2, 9), axis-major. Fills ``self.q``."""
        q = self.q
        cs = np.cos(x[:, 0:1] - _YAW_SHIFT)  # (N, 2): cos, sin
        q[:, 0:4] = x[:, 1:5]
        q[:, 4:6] = cs * x[:, 6:7]
        q[:, 6:8] = cs * x[:, 5:6]
        hom = (q @ self.Bt).reshape(self.n, 3, 9)
        zk = hom[:, 2]
        return cs, zk, hom[:, 0:2] / zk[:, None]

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """At x (N, 7): the (N, 8, 8) product ``[J r]^T [J r]`` (see the class docstring)."""
        n, dhom = self.n, self.dhom
        cs, zk, proj = self.project(x)
        # (numpy is slow at in-place broadcasting into strided views: products go straight into them)
        np.multiply(proj - self.kp_t, self.sqrt_c, out=self.r_rep)
        d = x - self.prior7
        d[:, 0] = (d[:, 0] + np.pi) % _TWO_PI - np.pi
        np.multiply(d, self.w7, out=self.r_prior)
        dhom[:, 0] = self.q[:, 4:8] @ self.B_yaw
        dhom[:, 5:7] = (cs @ self.B_wl).reshape(n, 2, 27)
        d4 = dhom.reshape(n, 7, 3, 9)
        # d (u, v) = (d hom_xy - (u, v) d hom_z) / hom_z, weighted like the residual
        tmp = self._tmp
        np.multiply(proj[:, None], d4[:, :, 2:3], out=tmp)
        np.subtract(d4[:, :, 0:2], tmp, out=tmp)
        np.multiply(tmp, (self.sqrt_c / zk[:, None])[:, None], out=self.jt_rep)
        b = self.b
        return b @ b.transpose(0, 2, 1)


def _solve_damped(A: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``A^-1 g`` for (N, 7, 7) and (N, 7). An exactly singular system (LAPACK refuses the whole batch)
    is solved object by object, by least squares where singular; a step that cannot be had is NaN,
    which the caller rejects like any step that does not lower the cost."""
    try:
        return np.linalg.solve(A, g[..., None])[..., 0]
    except np.linalg.LinAlgError:
        out = np.full(g.shape, np.nan)
        for i in range(len(A)):
            try:
                out[i] = np.linalg.solve(A[i], g[i])
            except np.linalg.LinAlgError:
                try:
                    out[i] = np.linalg.lstsq(A[i], g[i], rcond=None)[0]
                except np.linalg.LinAlgError:
                    pass
        return out


def solve_boxes3d_arrays(
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
) -> BatchSolution:
    """The objective of :func:`solve_box3d` for N objects in one vectorised Levenberg-Marquardt.

    Why not scipy per object: a frame has tens of objects and MINPACK's per-call overhead (~1-5 ms each)
    would dominate the detector's latency budget. Here every iteration evaluates all objects together
    with the analytic Jacobian (:class:`_Problem`: the projection is linear in (t, h, cos l, sin l,
    cos w, sin w), so the residuals and their derivatives are a few small matrix products), solves the
    7x7 damped normal equations of all objects at once, and each object keeps its own damping,
    accepting a step only when its cost falls. An object stops when an accepted step lowers its cost by
    less than ``tol`` (relative), its step is below ``tol`` (relative to max(1, |x|)), or its damping
    exceeds 1e10; finished objects are carried along masked (cheaper than re-indexing every array).
    The damping schedule (start 1e-3, /3 on success, x4 on failure, Marquardt's diagonal scaling) and
    the stopping rules are those of the central-difference version this replaces, so the iterates agree
    to float noise (tests/test_geometry3d_solver.py holds both to it on the shipped model's outputs).

    keypoints (N, 9, 2), dims_prior (N, 3) or (3,), confidences (N, 9), yaw_prior (N,), depth (N,) and
    dims_std (N, 3) or (3,) as :func:`solve_boxes3d` (NaN = not given); ``depth_rel_std`` makes a given
    depth a soft prior on z with that relative standard deviation (otherwise it only initialises).
    """
    kps = np.asarray(keypoints, dtype=np.float64).reshape(-1, 9, 2)
    n = len(kps)
    P = np.asarray(P, dtype=np.float64).reshape(3, 4)
    if n == 0:
        z = np.zeros(0)
        return BatchSolution(np.zeros((0, 7)), z, z, np.zeros(0, bool), np.zeros(0, int), np.zeros(0, int))
    dims = np.asarray(dims_prior, dtype=np.float64)
    dims = dims if dims.shape == (n, 3) else np.broadcast_to(dims, (n, 3))
    conf = np.ones((n, 9)) if confidences is None else np.maximum(np.asarray(confidences, float), 0.0)
    std = np.asarray(CLASS_STD_DIMS["car"] if dims_std is None else dims_std, dtype=np.float64)
    std = std if std.shape == (n, 3) else np.broadcast_to(std, (n, 3))
    yp = np.full(n, np.nan) if yaw_prior is None else np.asarray(yaw_prior, dtype=np.float64).reshape(n)
    dep = np.full(n, np.nan) if depth is None else np.asarray(depth, dtype=np.float64).reshape(n)
    has_yaw = np.isfinite(yp)
    use_z = np.isfinite(dep) & (dep > 0) & (depth_rel_std is not None)
    # priors in parameter order [yaw, x, y, z, h, w, l]; weight 0 where there is none
    prior7 = np.zeros((n, 7))
    prior7[:, 0] = np.where(has_yaw, yp, 0.0)
    prior7[:, 3] = np.where(use_z, dep, 0.0)
    prior7[:, 4:7] = dims
    w7 = np.zeros((n, 7))
    w7[:, 0] = np.where(has_yaw, np.sqrt(w_r), 0.0)
    w7[:, 3] = np.where(use_z, 1.0 / (np.where(use_z, dep, 1.0) * (depth_rel_std or 1.0)), 0.0)
    w7[:, 4:7] = 1.0 / std
    problem = _Problem(kps, P, np.sqrt(conf), prior7, w7)
    x = initial_guesses(kps, P, dims, dep, yp)
    m = problem.evaluate(x)
    cost = 0.5 * m[:, 7, 7]
    lam = np.full(n, 1e-3)
    active = np.ones(n, bool)
    iterations = np.zeros(n, int)
    for _ in range(max_iter):
        if not active.any():
            break
        # Marquardt's damping: J^T J + lam diag(J^T J + 1e-12), on the diagonal of a copy
        A = m[:, :7, :7].copy()
        diag = A.reshape(n, 49)[:, ::8]
        diag += lam[:, None] * (diag + 1e-12)
        dx = -_solve_damped(A, m[:, :7, 7])
        x_new = x + dx
        m_new = problem.evaluate(x_new)
        c_new = 0.5 * m_new[:, 7, 7]
        better = (c_new < cost) & active  # a NaN or inf cost never compares smaller
        rel = (cost - c_new) / np.maximum(cost, 1e-300)
        small_step = np.maximum.reduce(np.abs(dx) / np.maximum(1.0, np.abs(x)), axis=1) < tol
        np.copyto(x, x_new, where=better[:, None])
        np.copyto(m, m_new, where=better[:, None, None])
        cost = np.where(better, c_new, cost)
        # (a finished object's damping is never read again: it may grow with the rest)
        lam = np.where(better, np.maximum(lam / 3.0, 1e-12), lam * 4.0)
        iterations += active
        active &= ~((better & (rel < tol)) | small_step | (lam > 1e10))
    x[:, 0] = (x[:, 0] + np.pi) % _TWO_PI - np.pi  # wrap_angle
    boxes = np.empty((n, 7))
    boxes[:, :6] = x[:, 1:7]
    boxes[:, 6] = x[:, 0]
    # the RMS at the wrapped yaw, unweighted, over both axes of all 9 keypoints (as Solution3D)
    *_, proj = problem.project(x)
    err = proj - problem.kp_t
    rms = np.sqrt(np.add.reduce((err * err).reshape(n, 18), axis=1) / 18.0)
    success = np.logical_and.reduce(np.isfinite(boxes), axis=1) & np.logical_and.reduce(
        boxes[:, 3:6] > 0, axis=1
    )
    return BatchSolution(boxes, rms, cost, success, 1 + iterations, iterations)


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
    """:func:`solve_boxes3d_arrays` as one :class:`Solution3D` per object (the API of the reference
    :func:`solve_boxes3d`); the 3D lift uses the arrays directly."""
    return solve_boxes3d_arrays(
        keypoints, P, dims_prior, confidences, yaw_prior, depth, dims_std, w_r, depth_rel_std, max_iter, tol
    ).solutions()
