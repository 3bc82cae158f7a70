"""PointMixup (pointmixup.txt): interpolation of two point clouds under their optimal assignment.

For clouds S1 = {x_i}, S2 = {y_j} of N points, phi* is the bijection minimising sum |x_i − y_phi(i)|
(the EMD assignment, exact here: scipy's Hungarian solver), and the interpolant at ratio lambda is
{(1 − lambda) x_i + lambda y_phi*(i)}, lambda ~ Beta(alpha, alpha) (paper Eq. 6). The assignment does
not depend on lambda (the paper's Property 2), so it is solved once per pair and every draw of lambda
reuses it.

For completion (SPECS.md, ours): two objects' partial inputs are mixed with one lambda and their
complete targets with the same lambda, each pair of clouds with its own assignment, in the object
frame. Both are mixed at 512 points (the exact assignment of 512 points takes ~35 ms here, of 1,024
~200 ms): the mixed input is then filled up to the network's 1,024 by duplication, as the host fills
any sparse object, and the mixed target is repeated to 2,048 rows, which leaves CD_PCN unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from perception_pkg.completion.sampling import resample


def assignment(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """phi*: for each row of a the matched row of b (exact minimum total Euclidean distance)."""
    rows, cols = linear_sum_assignment(cdist(a, b))
    out = np.empty(len(a), dtype=np.int64)
    out[rows] = cols
    return out


def interpolate(a: np.ndarray, b_matched: np.ndarray, lam: float) -> np.ndarray:
    """(1 − lambda) x_i + lambda y_phi(i), with ``b_matched`` already in assignment order."""
    return ((1.0 - lam) * a + lam * b_matched).astype(np.float32)


@dataclass
class MixupPool:
    """Pre-assigned pairs: ``a_in``/``b_in`` (P, n, 3) partial inputs with b in a's assignment order,
    ``a_gt``/``b_gt`` (P, n, 3) targets likewise; ``pairs`` (P, 2) the training rows they came from."""

    a_in: np.ndarray
    b_in: np.ndarray
    a_gt: np.ndarray
    b_gt: np.ndarray
    pairs: np.ndarray

    def __len__(self) -> int:
        return len(self.pairs)

    def draw(self, k: int, lam: float, n_in: int, n_gt: int) -> tuple[np.ndarray, np.ndarray]:
        """Pair ``k`` mixed at ``lam``: input (n_in, 3) and target (n_gt, 3)."""
        x = interpolate(self.a_in[k], self.b_in[k], lam)
        g = interpolate(self.a_gt[k], self.b_gt[k], lam)
        reps_in, reps_gt = -(-n_in // len(x)), -(-n_gt // len(g))
        return np.tile(x, (reps_in, 1))[:n_in], np.tile(g, (reps_gt, 1))[:n_gt]


def build_pool(partials, gts: np.ndarray, pairs: int, rng: np.random.Generator, n: int = 512) -> MixupPool:
    """``pairs`` random pairs of distinct training objects (``partials[k]``: object k's points, ``gts``
    (K, M, 3) its targets), each resampled to ``n`` points and assigned once."""
    k = len(gts)
    idx = np.stack([rng.choice(k, 2, replace=False) for _ in range(pairs)])
    a_in, b_in, a_gt, b_gt = [], [], [], []
    for i, j in idx:
        xa, xb = resample(partials[i], n, rng), resample(partials[j], n, rng)
        ga, gb = resample(gts[i], n, rng), resample(gts[j], n, rng)
        a_in.append(xa)
        b_in.append(xb[assignment(xa, xb)])
        a_gt.append(ga)
        b_gt.append(gb[assignment(ga, gb)])
    f32 = np.float32
    return MixupPool(
        np.stack(a_in).astype(f32), np.stack(b_in).astype(f32), np.stack(a_gt).astype(f32),
        np.stack(b_gt).astype(f32), idx,
    )  # fmt: skip
