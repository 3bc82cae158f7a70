"""Small torch networks: the built-in benchmark model and one per output format the stack reads.

Each format network emits exactly the tensor layout third-party models use (YOLOX raw, YOLOv8 and
YOLOv8-pose channels-first, top-down heatmaps, CenterNet heads), so cards and decoders are exercised on
real exported ONNX graphs. ``Planted`` adds fixed tensors to a network's outputs: with ``gain = 0`` the
outputs are exactly the planted ones, which lets tests decode known boxes through the whole path.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def conv_bn(cin: int, cout: int, stride: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class TinyCenterNet(nn.Module):
    """CenterNet-style detector: encoder to stride 16, FPN-ish decoder back to stride 4, three heads.

    Heads: ``hm`` (C class logits), ``wh`` (box size in output cells), ``reg`` (sub-cell offset).
    At width 24 and 384x384 input it is about 1.6 GMAC, a stand-in for an embedded detector.
    """

    def __init__(self, num_classes: int = 80, width: int = 24, head_width: int = 64) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(conv_bn(3, w, 2), conv_bn(w, w))
        self.s4 = nn.Sequential(conv_bn(w, 2 * w, 2), conv_bn(2 * w, 2 * w))
        self.s8 = nn.Sequential(conv_bn(2 * w, 4 * w, 2), conv_bn(4 * w, 4 * w))
        self.s16 = nn.Sequential(conv_bn(4 * w, 8 * w, 2), conv_bn(8 * w, 8 * w), conv_bn(8 * w, 8 * w))
        self.up8 = conv_bn(8 * w, 4 * w, k=1)
        self.fuse8 = conv_bn(4 * w, 4 * w)
        self.up4 = conv_bn(4 * w, 2 * w, k=1)
        self.fuse4 = conv_bn(2 * w, 2 * w)

        def head(cout: int, bias: float = 0.0) -> nn.Sequential:
            h = nn.Sequential(
                nn.Conv2d(2 * w, head_width, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(head_width, cout, 1),
            )
            nn.init.constant_(h[-1].bias, bias)
            return h

        self.hm = head(num_classes, bias=-2.19)  # CenterNet's focal-loss prior: sigmoid(-2.19) = 0.1
        self.wh = head(2)
        self.reg = head(2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f4 = self.s4(self.stem(x))
        f8 = self.s8(f4)
        f16 = self.s16(f8)
        p8 = self.fuse8(f8 + nn.functional.interpolate(self.up8(f16), scale_factor=2.0, mode="nearest"))
        p4 = self.fuse4(f4 + nn.functional.interpolate(self.up4(p8), scale_factor=2.0, mode="nearest"))
        return self.hm(p4), self.wh(p4), self.reg(p4)


class _Pyramid(nn.Module):
    """Features at strides 8, 16, 32 for the YOLO-style heads."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        w = width
        self.s8 = nn.Sequential(conv_bn(3, w, 2), conv_bn(w, w, 2), conv_bn(w, w, 2))
        self.s16 = conv_bn(w, w, 2)
        self.s32 = conv_bn(w, w, 2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f8 = self.s8(x)
        f16 = self.s16(f8)
        return [f8, f16, self.s32(f16)]


def _grid(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """(1, 2, h*w) cell x, y in row-major order, as YOLO exports flatten their maps."""
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=like.dtype), torch.arange(w, dtype=like.dtype), indexing="ij"
    )
    return torch.stack([xs.reshape(-1), ys.reshape(-1)])[None]


class TinyYolox(nn.Module):
    """YOLOX head, no in-graph decode: ``[B, N, 5 + C]`` = dx, dy, log w, log h, sigmoid obj and cls."""

    def __init__(self, num_classes: int = 3, width: int = 8) -> None:
        super().__init__()
        self.body = _Pyramid(width)
        self.heads = nn.ModuleList(nn.Conv2d(width, 5 + num_classes, 1) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = []
        for f, head in zip(self.body(x), self.heads, strict=True):
            p = head(f).flatten(2)  # (B, 5 + C, h*w)
            levels.append(torch.cat([p[:, :4], p[:, 4:].sigmoid()], dim=1))
        return torch.cat(levels, dim=2).permute(0, 2, 1)


class TinyYolov8(nn.Module):
    """YOLOv8 layout ``[B, 4 + C (+ 3K), N]``: pixel cx, cy, w, h, class probabilities, keypoints x, y, v."""

    def __init__(self, num_classes: int = 3, num_keypoints: int = 0, width: int = 8) -> None:
        super().__init__()
        self.k = num_keypoints
        self.body = _Pyramid(width)
        self.heads = nn.ModuleList(nn.Conv2d(width, 4 + num_classes + 3 * num_keypoints, 1) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = []
        for f, head, stride in zip(self.body(x), self.heads, (8, 16, 32), strict=True):
            p = head(f).flatten(2)
            grid = _grid(f.shape[2], f.shape[3], p)
            xy = (grid + 0.5 + p[:, :2].tanh()) * stride
            wh = p[:, 2:4].clamp(-4, 4).exp() * stride
            parts = [xy, wh, p[:, 4 : p.shape[1] - 3 * self.k].sigmoid()]
            if self.k:
                kp = p[:, p.shape[1] - 3 * self.k :].reshape(p.shape[0], self.k, 3, -1)
                kxy = (kp[:, :, :2] * 2.0 + grid[:, None]) * stride
                parts.append(
                    torch.cat([kxy, kp[:, :, 2:].sigmoid()], dim=2).reshape(p.shape[0], 3 * self.k, -1)
                )
            levels.append(torch.cat(parts, dim=1))
        return torch.cat(levels, dim=2)


class TinyTopDown(nn.Module):
    """SimpleBaseline-style heatmaps ``[B, K, H/4, W/4]``, raw or sigmoid."""

    def __init__(self, num_keypoints: int = 17, width: int = 16, sigmoid: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(3, width, 2), conv_bn(width, width, 2), conv_bn(width, width))
        self.head = nn.Conv2d(width, num_keypoints, 1)
        self.sigmoid = sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(self.body(x))
        return h.sigmoid() if self.sigmoid else h


class Planted(nn.Module):
    """``outputs = planted + gain * net(x)``: with gain 0 the graph still runs the net, outputs are exact."""

    def __init__(self, net: nn.Module, planted: Sequence[torch.Tensor], gain: float = 0.0) -> None:
        super().__init__()
        self.net = net
        self.gain = gain
        for i, t in enumerate(planted):
            self.register_buffer(f"planted{i}", t.detach().clone().float())
        self.n = len(planted)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        out = self.net(x)
        outs = (out,) if isinstance(out, torch.Tensor) else tuple(out)
        res = tuple(getattr(self, f"planted{i}") + self.gain * o for i, o in enumerate(outs))
        return res[0] if len(res) == 1 else res
