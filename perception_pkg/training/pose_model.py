"""The sim top-down pose network: one small encoder-decoder to stride 4, three heads on shared features.

Why this shape: people in the simulator are 40-200 px tall, so a 128x96 crop is already at (or above) their
native resolution, and a 4-level encoder (strides 2-16) sees the whole crop from the deepest level, which
is what a top-down net needs to tell the centred person's left from right. One lateral-skip decoder back to
stride 4 gives SimpleBaseline's output geometry (64x48 maps for a 256x192 crop) at a fraction of the cost:
~0.3 M parameters and ~60 MMAC at 128x96, which trains in minutes on one CPU thread.

One network with three heads rather than three networks: the comparison is then between *decoders* on the
same features, the CPU budget pays for one training run per resolution, and the ONNX carries one tensor
per head (a card picks which head its decoder reads):

- ``heatmaps`` (K maps): Gaussian targets, MSE; decoded by argmax (+ quarter shift / RSN post-processing).
- ``integral`` (K logit maps): trained only through the soft-argmax with an L1 loss on the coordinates.
- ``md_c`` (K maps, sigmoid in the graph), ``md_ox``, ``md_oy``: mass-displacement confidences and
  displacement fields ``o = (target - x) / d`` in heatmap cells / d.
"""

from __future__ import annotations

import torch
from torch import nn

from perception_pkg.training.models import conv_bn


class SimPoseNet(nn.Module):
    """``x`` (B, 3, H, W) normalised RGB -> five (B, K, H/4, W/4) tensors in :data:`OUTPUT_NAMES` order."""

    def __init__(self, num_keypoints: int = 17, width: int = 32) -> None:
        super().__init__()
        w = width
        self.k = num_keypoints
        self.stem = conv_bn(3, w // 2 + w // 4, 2)  # 24 at width 32
        self.s4 = nn.Sequential(conv_bn(w // 2 + w // 4, w, 2), conv_bn(w, w))
        self.s8 = nn.Sequential(conv_bn(w, 2 * w, 2), conv_bn(2 * w, 2 * w))
        self.s16 = nn.Sequential(conv_bn(2 * w, 3 * w, 2), conv_bn(3 * w, 3 * w), conv_bn(3 * w, 3 * w))
        self.lat16 = conv_bn(3 * w, 2 * w, k=1)
        self.fuse8 = conv_bn(2 * w, 2 * w)
        self.lat8 = conv_bn(2 * w, w, k=1)
        self.fuse4 = conv_bn(w, w)
        k = num_keypoints

        def head(cout: int, bias: float = 0.0) -> nn.Sequential:
            h = nn.Sequential(nn.Conv2d(w, w, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(w, cout, 1))
            nn.init.constant_(h[-1].bias, bias)
            return h

        self.hm = head(k)
        self.integral = head(k)
        # c starts near 0 everywhere (sigmoid(-4) = 0.018): the positives are ~2 % of the cells
        self.md = head(3 * k)
        with torch.no_grad():
            self.md[-1].bias[:k] = -4.0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        f4 = self.s4(self.stem(x))
        f8 = self.s8(f4)
        f16 = self.s16(f8)
        up = nn.functional.interpolate
        p8 = self.fuse8(f8 + up(self.lat16(f16), size=f8.shape[-2:], mode="nearest"))
        return self.fuse4(f4 + up(self.lat8(p8), size=f4.shape[-2:], mode="nearest"))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        p4 = self.features(x)
        md = self.md(p4)
        k = self.k
        return self.hm(p4), self.integral(p4), torch.sigmoid(md[:, :k]), md[:, k : 2 * k], md[:, 2 * k :]

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Like ``forward`` but with ``c`` as logits (BCE-with-logits is the numerically stable loss)."""
        p4 = self.features(x)
        md = self.md(p4)
        k = self.k
        return self.hm(p4), self.integral(p4), md[:, :k], md[:, k : 2 * k], md[:, 2 * k :]


def build(num_keypoints: int = 17, width: int = 32) -> SimPoseNet:
    """Factory named in the cards' ``torch`` section (parity checks, torch backend)."""
    return SimPoseNet(num_keypoints, width)


class FlipAveraged(nn.Module):
    """Flip test-time augmentation inside the graph: every head averaged with the mirrored crop's head.

    The mirrored crop's maps are flipped back along W with left/right channels swapped; with the "cell"
    grid alignment this is exact (cell ``u`` <-> ``W - 1 - u``). The x displacement changes sign under the
    mirror. Integral logits are averaged as logits (the soft-argmax of the product of both distributions),
    heatmaps and ``c`` as values. Twice the compute, same outputs, so any card can select it.
    """

    def __init__(self, net: SimPoseNet, flip_perm: list[int]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("perm", torch.tensor(flip_perm, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        a = self.net(x)
        b = self.net(torch.flip(x, dims=[3]))
        back = [torch.flip(t, dims=[3])[:, self.perm] for t in b]
        back[3] = -back[3]  # o_x of the mirrored crop points the other way
        return tuple(0.5 * (u + v) for u, v in zip(a, back, strict=True))
