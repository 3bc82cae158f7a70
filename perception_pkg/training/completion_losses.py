"""SoftPoolNet's losses (softpoolnet.txt §6) and the EMD used by them and by PointMixup.

- ``chamfer``: CD_PCN, ½ (mean_a min_b |a − b| + mean_b min_a |a − b|) with unsquared distances (the
  metric we report, SPECS.md); the square root gets a 1e-9 floor so its gradient stays finite.
- ``inter_region``: L_inter = log R − E_r, E_r the entropy of the regions' mean activation (Eq. 4-5):
  zero when the points spread evenly over the R regions.
- ``intra_region``: L_intra = mean per-point entropy of the activations (Eq. 6): zero for one-hot codes.
- ``boundary``: L_boundary (Eq. 7, tau = 0.3) on the coarse output. Each coarse point is the decoded
  row of one region i and carries the activations of the input point that row pooled; B_i^j = the rows
  of region i whose activation for j exceeds tau. Sum over region pairs (i < j) with both sets
  non-empty of the Chamfer distance between B_i^j and B_j^i (coarse coordinates), per batch item,
  averaged over the batch.
- ``preserve``: L_preserve = EMD(F*, F) in the R-dimensional activation space (Eq. 8), with 256 rows
  drawn at random from F against the 256 pooled rows; the assignment is exact (scipy's Hungarian
  solver on the detached costs), the loss the mean matched distance, differentiable through the
  matched pairs.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

EPS = 1e-9


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, N, M) squared Euclidean distances of (B, N, D) and (B, M, D)."""
    d = (a * a).sum(-1, keepdim=True) + (b * b).sum(-1).unsqueeze(1) - 2 * torch.bmm(a, b.transpose(1, 2))
    return d.clamp_min(0.0)


def nearest(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (B, N) of the nearest row of b for each row of a, and (B, M) the other way (KD-trees on
    the detached coordinates: the min of a distance matrix is a selection, so the gradient through the
    selected pairs is the gradient of the min; a dense (B, 2048, 2048) matrix is 15x slower here)."""
    an, bn = a.detach().cpu().double().numpy(), b.detach().cpu().double().numpy()
    ab = np.empty(an.shape[:2], dtype=np.int64)
    ba = np.empty(bn.shape[:2], dtype=np.int64)
    for i in range(len(an)):
        ab[i] = cKDTree(bn[i]).query(an[i], k=1)[1]
        ba[i] = cKDTree(an[i]).query(bn[i], k=1)[1]
    return torch.from_numpy(ab).to(a.device), torch.from_numpy(ba).to(a.device)


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def chamfer(a: torch.Tensor, b: torch.Tensor, reduce: bool = True) -> torch.Tensor:
    """CD_PCN per batch item (or its mean)."""
    ab, ba = nearest(a, b)
    d_ab = torch.sqrt(((a - _gather(b, ab)) ** 2).sum(-1) + EPS).mean(1)
    d_ba = torch.sqrt(((b - _gather(a, ba)) ** 2).sum(-1) + EPS).mean(1)
    out = 0.5 * (d_ab + d_ba)
    return out.mean() if reduce else out


def inter_region(act: torch.Tensor) -> torch.Tensor:
    """act (B, R, N) -> log R − regional entropy, averaged over the batch."""
    r = act.shape[1]
    mean = act.mean(dim=2)
    entropy = -(mean * torch.log(mean + EPS)).sum(1)
    return (math.log(r) - entropy).mean()


def intra_region(act: torch.Tensor) -> torch.Tensor:
    """act (B, R, N) -> mean over points and batch of each point's activation entropy."""
    return -(act * torch.log(act + EPS)).sum(1).mean()


def boundary(coarse: torch.Tensor, pooled_act: torch.Tensor, tau: float = 0.3) -> torch.Tensor:
    """coarse (B, R*Nr, 3) with rows region-major; pooled_act (B, R, R, Nr): [b, k, j, n] = activation j
    of the n-th row pooled for region k."""
    b, r, _, nr = pooled_act.shape
    pts = coarse.reshape(b, r, nr, 3)
    total = coarse.new_zeros(())
    with torch.no_grad():
        member = pooled_act > tau  # [b, i, j, n]: row n of region i has activation j above tau
    for i in range(r):
        for j in range(i + 1, r):
            mi, mj = member[:, i, j], member[:, j, i]  # (B, Nr) each
            ok = mi.any(1) & mj.any(1)
            if not bool(ok.any()):
                continue
            d = squared_distances(pts[:, i], pts[:, j])  # (B, Nr, Nr)
            big = torch.finfo(d.dtype).max / 4
            masked = d.masked_fill(~(mi.unsqueeze(2) & mj.unsqueeze(1)), big)
            ij = torch.sqrt(masked.min(2).values + EPS)
            ji = torch.sqrt(masked.min(1).values + EPS)
            ij = (ij * mi).sum(1) / mi.sum(1).clamp_min(1)
            ji = (ji * mj).sum(1) / mj.sum(1).clamp_min(1)
            total = total + (0.5 * (ij + ji) * ok).sum() / b
    return total


def exact_assignment(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """(B, N) columns of b matched to each row of a under the exact minimum-cost bijection."""
    with torch.no_grad():
        cost = torch.sqrt(squared_distances(a.float(), b.float()) + EPS).cpu().numpy()
    return np.stack([linear_sum_assignment(c)[1] for c in cost])


def emd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean matched distance of (B, N, D) and (B, N, D) under the exact assignment (batch mean)."""
    cols = torch.from_numpy(exact_assignment(a, b)).to(a.device)
    matched = torch.gather(b, 1, cols.unsqueeze(-1).expand(-1, -1, b.shape[-1]))
    return torch.sqrt(((a - matched) ** 2).sum(-1) + EPS).mean()


def preserve(
    act: torch.Tensor, pooled_act: torch.Tensor, generator: torch.Generator | None = None, items: int = 0
) -> torch.Tensor:
    """EMD between the pooled rows' activations (B, R*Nr rows of R) and as many rows drawn from F;
    ``items`` > 0: on that many batch items only (an unbiased estimate at a fraction of the cost)."""
    if 0 < items < act.shape[0]:
        keep = torch.randperm(act.shape[0], generator=generator)[:items]
        act, pooled_act = act[keep], pooled_act[keep]
    b, r, n = act.shape
    star = pooled_act.permute(0, 1, 3, 2).reshape(b, -1, r)  # (B, R*Nr, R)
    k = star.shape[1]
    pick = torch.stack([torch.randperm(n, generator=generator)[:k] for _ in range(b)]).to(act.device)
    drawn = torch.gather(act.transpose(1, 2), 1, pick.unsqueeze(-1).expand(-1, -1, r))
    return emd(star, drawn)
