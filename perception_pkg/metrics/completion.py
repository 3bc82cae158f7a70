"""Point-cloud completion metrics (SPECS.md, Point-cloud completion), numpy + scipy.

Conventions (stated because papers differ):

- ``chamfer_pcn(a, b)`` = ½ (mean_a min_b |a − b| + mean_b min_a |a − b|), unsquared Euclidean
  distances ("CD_PCN"; reported ×10³);
- ``chamfer_l2(a, b)`` = the same with squared distances ("CD-L2"; reported ×10³ too, as PCN does);
- ``emd(a, b)`` = mean |a_i − b_φ(i)| under the exact optimal bijection φ (scipy's Hungarian
  solver), both sets resampled to the same size (1,024 in reports; ×10²);
- ``fscore(pred, gt, d)``: precision = share of predicted points within d of the truth, recall = share
  of true points within d of the prediction, F = 2PR / (P + R) (0 when both are 0);
- ``fidelity(partial, completed)`` = mean over the input of its distance to the nearest output point
  (KITTI protocol of PCN: how well the observed points are kept);
- ``consistency`` = chamfer_pcn between completions of one object in consecutive frames.

All distances are in the units of the inputs: the normalised object frame in the synthetic
evaluation (a car's length is 1), metres where the caller passes sensor-frame clouds.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree


def _nn(a: NDArray, b: NDArray) -> NDArray[np.float64]:
    """Distance from each row of ``a`` to its nearest row of ``b``."""
    d, _ = cKDTree(np.asarray(b, dtype=np.float64)).query(np.asarray(a, dtype=np.float64), k=1)
    return np.asarray(d, dtype=np.float64)


def _check(a: NDArray, b: NDArray) -> None:
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"completion metrics need non-empty point sets, got {len(a)} and {len(b)}")


def directed(a: NDArray, b: NDArray) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Nearest-neighbour distances a -> b and b -> a (for callers computing several metrics at once)."""
    _check(a, b)
    return _nn(a, b), _nn(b, a)


def chamfer_pcn(a: NDArray, b: NDArray) -> float:
    ab, ba = directed(a, b)
    return 0.5 * (float(ab.mean()) + float(ba.mean()))


def chamfer_l2(a: NDArray, b: NDArray) -> float:
    ab, ba = directed(a, b)
    return 0.5 * (float((ab**2).mean()) + float((ba**2).mean()))


def fscore(pred: NDArray, gt: NDArray, d: float = 0.01) -> float:
    pg, gp = directed(pred, gt)
    precision, recall = float((pg < d).mean()), float((gp < d).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def emd(a: NDArray, b: NDArray) -> float:
    """Exact EMD of two equal-size sets (mean matched distance)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    _check(a, b)
    if len(a) != len(b):
        raise ValueError(f"emd needs equal sizes, got {len(a)} and {len(b)}")
    cost = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def fidelity(partial: NDArray, completed: NDArray) -> float:
    _check(partial, completed)
    return float(_nn(partial, completed).mean())


def all_metrics(pred: NDArray, gt: NDArray, d: float = 0.01) -> dict[str, float]:
    """CD_PCN, CD-L2 and F-score@d from one pair of nearest-neighbour queries."""
    pg, gp = directed(pred, gt)
    precision, recall = float((pg < d).mean()), float((gp < d).mean())
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {
        "cd_pcn": 0.5 * (float(pg.mean()) + float(gp.mean())),
        "cd_l2": 0.5 * (float((pg**2).mean()) + float((gp**2).mean())),
        "fscore": f,
        "precision": precision,
        "recall": recall,
    }
