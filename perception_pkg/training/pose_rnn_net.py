"""Recurrent part-detection association (rnn_part_detection_association.txt, Sec. 3): the network and
its losses, in torch (training and export only; the runtime decoder is numpy + onnxruntime).

Network, for a 288x384 input:

- **features** (once per frame, the card's ``model.onnx``): the frozen detector up to ``p4`` (32 ch, stride
  4, :mod:`.pose_rnn_data`), then a small trainable encoder: ``f4`` (1x1 -> 16 ch, stride 4) for the
  output head and ``f8`` (3x3 stride 2 + dilated 3x3 -> 24 ch, stride 8, 36x48) for the ConvLSTMs.
- **step** (the ONNX step graph, state in / state out): input ``hm`` (J maps at stride 4, the feedback
  loop), ``h1, c1, h2, c2``. ConvLSTM 1 (3x3, hidden 24) over ``[f8, maxpool2(hm), h1]``, ConvLSTM 2 (3x3
  dilation 2, hidden 16: the paper halves the hidden size per layer) over ``[h1, h2]``; the output conv reads
  ``[upsample2(h2), f4, hm]`` at stride 4 and gives the next J maps. The stop head is the paper's: a fully
  connected layer on the concatenated spatial maxima of each layer's hidden state -> logit of P_t.
- **loop** (``unroll`` here, the host loop in :mod:`perception_pkg.decoders.pose.rnn_association`): per
  person two steps (the feedback refinement: ``2 (Z + 1)`` steps for Z people); the first takes the
  initial maps (uniform [0, 0.1] in training as in the paper; their mean 0.05 at inference, so decoding
  is deterministic), the second that step's output. The second step's maps and P_t are the person's.

Losses (Sec. 3.1.1, 3.2, Table 4 configuration (a, a')):

- stop: binary cross-entropy of P against Eq. 1's vector ``[1]*z + [0]*(max(Zhat - z, 0) + 1)`` of
  length ``max(Zhat, z) + 1``, Zhat the predicted count (iterations before the first P_t < omega);
- heatmaps: squared L2 between matched predicted and ground-truth person maps, matched by the Hungarian
  algorithm (scipy ``linear_sum_assignment``) on the summed per-joint distances; when too few are found
  (Zhat < z) only predictions 1..z with P_t >= omega take part (a); when too many, only the first z (a').
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from torch import nn

OMEGA = 1.0 / (1.0 + float(np.exp(1.0)))  # sigmoid(-1) ~ 0.2689, the paper's stop threshold
J = 17
INIT_LOW, INIT_HIGH = 0.0, 0.1
INIT_VALUE = 0.5 * (INIT_LOW + INIT_HIGH)
STEP_INPUTS = ("f4", "f8", "hm", "h1", "c1", "h2", "c2")
STEP_OUTPUTS = ("hm_out", "p_logit", "h1_out", "c1_out", "h2_out", "c2_out")
FEATURE_OUTPUTS = ("f4", "f8")


class ConvLSTMCell(nn.Module):
    """ConvLSTM (Shi et al. 2015): one conv over ``[x, h]`` gives the i, f, o, g gates."""

    def __init__(self, cin: int, hidden: int, dilation: int = 1) -> None:
        super().__init__()
        self.hidden = hidden
        self.conv = nn.Conv2d(cin + hidden, 4 * hidden, 3, padding=dilation, dilation=dilation)
        with torch.no_grad():  # forget-gate bias 1: remember by default (standard LSTM initialisation)
            self.conv.bias.zero_()
            self.conv.bias[hidden : 2 * hidden].fill_(1.0)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, o, g = torch.chunk(self.conv(torch.cat([x, h], 1)), 4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class FeatureEncoder(nn.Module):
    """Trainable reduction of the frozen ``p4`` (32 ch, stride 4) to ``f4`` (stride 4) and ``f8``."""

    def __init__(self, cin: int = 32, c4: int = 16, c8: int = 24) -> None:
        super().__init__()
        self.to4 = nn.Sequential(nn.Conv2d(cin, c4, 1), nn.ReLU())
        self.to8 = nn.Sequential(
            nn.Conv2d(cin, c8, 3, 2, 1), nn.ReLU(), nn.Conv2d(c8, c8, 3, padding=2, dilation=2), nn.ReLU()
        )

    def forward(self, p4: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.to4(p4), self.to8(p4)


class RnnStep(nn.Module):
    """One recurrent step: (f4, f8, hm, h1, c1, h2, c2) -> (hm_out, p_logit, h1, c1, h2, c2)."""

    def __init__(
        self, c4: int = 16, c8: int = 24, hidden: tuple[int, int] = (24, 16), head: int = 16, joints: int = J
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.joints = joints
        self.lstm1 = ConvLSTMCell(c8 + joints, hidden[0])
        self.lstm2 = ConvLSTMCell(hidden[0], hidden[1], dilation=2)
        self.head = nn.Sequential(
            nn.Conv2d(hidden[1] + c4 + joints, head, 3, padding=1), nn.ReLU(), nn.Conv2d(head, joints, 1)
        )
        self.stop = nn.Linear(hidden[0] + hidden[1], 1)
        with torch.no_grad():  # start from near-empty maps: the target is zero almost everywhere
            self.head[-1].weight.mul_(0.01)
            self.head[-1].bias.zero_()

    def forward(
        self,
        f4: torch.Tensor,
        f8: torch.Tensor,
        hm: torch.Tensor,
        h1: torch.Tensor,
        c1: torch.Tensor,
        h2: torch.Tensor,
        c2: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        h1, c1 = self.lstm1(torch.cat([f8, F.max_pool2d(hm, 2)], 1), h1, c1)
        h2, c2 = self.lstm2(h1, h2, c2)
        up = F.interpolate(h2, scale_factor=2.0, mode="bilinear", align_corners=False)
        out = self.head(torch.cat([up, f4, hm], 1))
        pooled = torch.cat([h1.amax(dim=(2, 3)), h2.amax(dim=(2, 3))], 1)
        return out, self.stop(pooled)[:, 0], h1, c1, h2, c2

    def zero_state(self, f8: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b, _, h, w = f8.shape
        z1 = f8.new_zeros(b, self.hidden[0], h, w)
        z2 = f8.new_zeros(b, self.hidden[1], h, w)
        return z1, z1.clone(), z2, z2.clone()


class RnnFeatures(nn.Module):
    """Image (B, 3, 288, 384) RGB in [0, 1] -> (f4, f8): frozen detector p4 + the trainable encoder."""

    def __init__(self, detector: nn.Module, encoder: FeatureEncoder) -> None:
        super().__init__()
        self.detector = detector
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from perception_pkg.training.pose_rnn_data import backbone_p4

        return self.encoder(backbone_p4(self.detector, x))


def unroll(
    step: RnnStep,
    f4: torch.Tensor,
    f8: torch.Tensor,
    needed: Sequence[int] | None,
    max_people: int,
    generator: torch.Generator | None = None,
    refine: int = 2,
    omega: float = OMEGA,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run people iterations until every image has both stopped (P_t < omega) and reached its
    ``needed`` count (z + 1 in training, so Eq. 1 is fully defined), at most ``max_people``; ``needed``
    None = stop only on P. Returns maps (T, B, J, H, W) and stop logits (T, B)."""
    state = step.zero_state(f8)
    b = f4.shape[0]
    hw = f4.shape[2:]
    maps, logits = [], []
    stopped = torch.zeros(b, dtype=torch.bool)
    for t in range(max_people):
        if generator is not None:
            hm = torch.rand(b, step.joints, *hw, generator=generator) * (INIT_HIGH - INIT_LOW) + INIT_LOW
        else:
            hm = f4.new_full((b, step.joints, *hw), INIT_VALUE)
        hm = hm.to(f4.dtype)
        for _ in range(refine):
            hm, logit, *state = step(f4, f8, hm, *state)
        maps.append(hm)
        logits.append(logit)
        stopped |= torch.sigmoid(logit.detach().float()) < omega
        reached = torch.ones(b, dtype=torch.bool) if needed is None else torch.as_tensor(needed) <= t + 1
        if bool((stopped & reached).all()):
            break
    return torch.stack(maps), torch.stack(logits)


# --- targets and losses -------------------------------------------------------------------------------


def gaussian_maps(
    people: NDArray, count: int, hw: tuple[int, int], stride: float = 4.0, sigma: float = 1.0
) -> NDArray[np.float32]:
    """(count, J, H, W) unnormalised Gaussians (peak 1) at each labelled keypoint, zero maps for v = 0.

    ``people`` (>= count, J, 3) in network-input pixels; the heatmap cell (i, j) centre is at input
    ``((j + 0.5) s, (i + 0.5) s)`` (the "cell" alignment of ``decoders/pose/geometry.py``)."""
    p = np.asarray(people, np.float64)[:count]
    u = p[..., 0] / stride - 0.5
    v = p[..., 1] / stride - 0.5
    ys = np.arange(hw[0], dtype=np.float64)
    xs = np.arange(hw[1], dtype=np.float64)
    gy = np.exp(-((ys[None, None, :] - v[..., None]) ** 2) / (2 * sigma**2))  # (Z, J, H)
    gx = np.exp(-((xs[None, None, :] - u[..., None]) ** 2) / (2 * sigma**2))  # (Z, J, W)
    maps = gy[..., :, None] * gx[..., None, :]
    maps *= (p[..., 2] > 0)[..., None, None]
    return maps.astype(np.float32)


def predicted_count(p: NDArray, omega: float = OMEGA) -> int:
    """Zhat: the iterations before the first P_t < omega (all of them if P never drops)."""
    below = np.flatnonzero(np.asarray(p) < omega)
    return int(below[0]) if below.size else len(p)


def stop_targets(zhat: int, z: int) -> NDArray[np.float32]:
    """Eq. 1: ``[1]*z + [0]`` when Zhat <= z, else ``[1]*z + [0]*(Zhat - z + 1)``; length max(Zhat, z)+1."""
    if zhat < 0 or z < 0:
        raise ValueError(f"counts must be >= 0, got Zhat={zhat}, z={z}")
    return np.concatenate([np.ones(z), np.zeros(max(zhat - z, 0) + 1)]).astype(np.float32)


def loss_predictions(p: NDArray, z: int, omega: float = OMEGA) -> NDArray[np.intp]:
    """Which predictions enter the heatmap loss (configuration (a, a') of Table 4): the first z, and
    when fewer than z were found only those of them with P_t >= omega."""
    p = np.asarray(p, dtype=np.float64)
    zhat = predicted_count(p, omega)
    idx = np.arange(min(z, len(p)))
    if zhat < z:
        idx = idx[p[idx] >= omega]
    return idx


def pairwise_map_distance(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Cost C[k, k'] = sum_j ||H_k,j - G_k',j||^2 for pred (P, J, H, W) and gt (Z, J, H, W) -> (P, Z)."""
    a = pred.flatten(1).float()
    b = gt.flatten(1).float()
    return (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T


def hungarian_match(cost: NDArray) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Minimum-cost assignment (rows, cols), min(P, Z) pairs, by scipy's ``linear_sum_assignment``."""
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2 or not np.isfinite(c).all():
        raise ValueError(f"cost must be a finite 2-D matrix, got shape {c.shape}")
    rows, cols = linear_sum_assignment(c)
    return rows.astype(np.intp), cols.astype(np.intp)


def rnn_loss(
    maps: torch.Tensor,
    logits: torch.Tensor,
    targets: Sequence[torch.Tensor],
    counts: Sequence[int],
    omega: float = OMEGA,
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(heatmap loss, stop loss, Zhat per image) for maps (T, B, J, H, W), logits (T, B) and per image
    its ground-truth maps (z, J, H, W). Heatmap loss: summed squared error per matched person, averaged
    over the ground-truth people of the batch; stop loss: BCE averaged over the Eq. 1 entries."""
    hm_terms, stop_terms, zhats = [], [], []
    n_stop = 0
    n_people = max(1, int(sum(counts)))
    probs = torch.sigmoid(logits.detach().float()).numpy()
    for b, z in enumerate(counts):
        p = probs[:, b]
        zhat = predicted_count(p, omega)
        zhats.append(zhat)
        want = torch.from_numpy(stop_targets(zhat, z))[: len(p)]  # the loop may end first (max_people)
        n_stop += len(want)
        stop_terms.append(
            F.binary_cross_entropy_with_logits(logits[: len(want), b].float(), want, reduction="sum")
        )
        idx = loss_predictions(p, z, omega)
        if z == 0 or idx.size == 0:
            continue
        pred = maps[torch.as_tensor(idx), b].float()
        with torch.no_grad():
            cost = pairwise_map_distance(pred, targets[b]).numpy()
        rows, cols = hungarian_match(cost)
        diff = pred[torch.as_tensor(rows)] - targets[b][torch.as_tensor(cols)]
        hm_terms.append((diff * diff).sum())
    hm_loss = torch.stack(hm_terms).sum() / n_people if hm_terms else maps.sum() * 0.0
    return hm_loss, torch.stack(stop_terms).sum() / max(1, n_stop), zhats
