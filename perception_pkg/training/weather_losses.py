"""Losses of the weather restorer: LSGAN, the task-aware perceptual loss, the curve net's smoothness.

The perceptual network is the shipped detector's backbone (``models/sim_detector/model.pt`` loaded into
:class:`~perception_pkg.training.detector_net.SimDetector`, frozen, eval mode): no ImageNet network can be
downloaded here, and features the detector itself reads are what restoration must get right for
detection. :class:`DetectorFeatures` returns its stride-2, -4 and -8 stage outputs; the loss is the
L1 distance per stage divided by the clean features' mean magnitude (so the stages weigh alike).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from perception_pkg.training.detector_net import SimDetector


def lsgan_d(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Discriminator: 0.5 (E(D(real) - 1)^2 + E D(fake)^2), summed over scales."""
    return sum(0.5 * ((r - 1.0).pow(2).mean() + f.pow(2).mean()) for r, f in zip(real, fake, strict=True))


def lsgan_g(fake: list[torch.Tensor]) -> torch.Tensor:
    """Generator: E(D(fake) - 1)^2, summed over scales."""
    return sum((f - 1.0).pow(2).mean() for f in fake)


class DetectorFeatures(nn.Module):
    """Frozen stride-2/4/8 features of the shipped detector; input RGB in [-1, 1]."""

    def __init__(self, weights: str | Path | None = None, width: int = 16) -> None:
        super().__init__()
        net = SimDetector(width=width)
        if weights is not None:
            net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.stem, self.s4, self.s8 = net.stem, net.s4, net.s8
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> DetectorFeatures:
        return super().train(False)  # BN statistics of the detector stay as trained

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f2 = self.stem((x + 1.0) * 0.5)  # the detector reads RGB in [0, 1]
        f4 = self.s4(f2)
        return [f2, f4, self.s8(f4)]


def perceptual(features: DetectorFeatures, restored: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        target = features(clean)
    return sum(
        F.l1_loss(a, b) / b.abs().mean().clamp_min(1e-6)
        for a, b in zip(features(restored), target, strict=True)
    )


def smoothness(a: torch.Tensor) -> torch.Tensor:
    """Zero-DCE's illumination smoothness: total variation of the curve maps."""
    return (a[:, :, 1:] - a[:, :, :-1]).pow(2).mean() + (a[:, :, :, 1:] - a[:, :, :, :-1]).pow(2).mean()
