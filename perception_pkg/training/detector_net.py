"""The detector we train and ship: CenterNet 2D heads + RTM3D 3D heads + mixture-density pose heads.

One small encoder-decoder to stride 4 feeds three head trunks (2D, 3D, pose), so each task has its own
3x3 features but the backbone is paid for once. Output tensors (``B`` batch, ``h, w`` = input / 4):

=========  ======  ==============================================================================
name       chans   meaning
=========  ======  ==============================================================================
hm         C       class centre logits (sigmoid in the decoder), C = len(classes)
wh         2       2D box width, height in output cells
reg        2       sub-cell offset of the 2D centre
kp_hm      9       RTM3D vertex logits (8 corners + 3D centre, geometry3d.box3d order)
kp_off     18      centre cell -> vertex offsets (x0, y0, x1, y1, ...) in output cells
kp_reg     2       sub-cell offset of a vertex peak (shared by the 9 vertex types)
dim        3       log(D / class mean) for D = (h, w, l)
rot        8       Multi-Bin observation angle (geometry3d.multibin layout)
dep        1       log depth (m) of the 3D centre: only initialises the solver
pose_off   2KM     per component m: centre cell -> keypoint offsets (x0, y0, ...) in output cells
pose_sigma M       raw sigma (decoders.pose.mixture_pose.sigma_from_raw), output cells
pose_alpha M       mixture weight logits
=========  ======  ==============================================================================
"""

from __future__ import annotations

import torch
from torch import nn

from perception_pkg.training.models import conv_bn

OUTPUT_NAMES = (
    "hm", "wh", "reg", "kp_hm", "kp_off", "kp_reg", "dim", "rot", "dep",
    "pose_off", "pose_sigma", "pose_alpha",
)  # fmt: skip


class _Trunk(nn.Module):
    """3x3 conv features shared by a group of heads, one 1x1 conv per head."""

    def __init__(self, cin: int, width: int, heads: dict[str, int], biases: dict[str, float]) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, width, 3, padding=1), nn.ReLU(inplace=True))
        self.heads = nn.ModuleDict({k: nn.Conv2d(width, c, 1) for k, c in heads.items()})
        for k, b in biases.items():
            nn.init.constant_(self.heads[k].bias, b)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.body(x)
        return {k: h(f) for k, h in self.heads.items()}


class SimDetector(nn.Module):
    """Encoder to stride 16 (ResNet-like stages), top-down fusion back to stride 4, three head trunks."""

    def __init__(
        self, num_classes: int = 2, num_keypoints: int = 17, components: int = 2, width: int = 16
    ) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(conv_bn(3, w, 2), conv_bn(w, w))
        self.s4 = nn.Sequential(conv_bn(w, 2 * w, 2), conv_bn(2 * w, 2 * w))
        self.s8 = nn.Sequential(conv_bn(2 * w, 4 * w, 2), conv_bn(4 * w, 4 * w), conv_bn(4 * w, 4 * w))
        self.s16 = nn.Sequential(conv_bn(4 * w, 8 * w, 2), conv_bn(8 * w, 8 * w), conv_bn(8 * w, 8 * w))
        self.lat8 = conv_bn(8 * w, 4 * w, k=1)
        self.fuse8 = conv_bn(4 * w, 4 * w)
        self.lat4 = conv_bn(4 * w, 2 * w, k=1)
        self.fuse4 = conv_bn(2 * w, 2 * w)
        prior = -2.19  # CenterNet's focal-loss start: sigmoid(-2.19) = 0.1
        c = 2 * w
        self.det2d = _Trunk(c, 48, {"hm": num_classes, "wh": 2, "reg": 2}, {"hm": prior})
        self.det3d = _Trunk(
            c, 48, {"kp_hm": 9, "kp_off": 18, "kp_reg": 2, "dim": 3, "rot": 8, "dep": 1}, {"kp_hm": prior}
        )
        self.pose = _Trunk(
            c, 48, {"pose_off": 2 * num_keypoints * components, "pose_sigma": components,
                    "pose_alpha": components}, {},
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f4 = self.s4(self.stem(x))
        f8 = self.s8(f4)
        f16 = self.s16(f8)
        p8 = self.fuse8(f8 + nn.functional.interpolate(self.lat8(f16), scale_factor=2.0, mode="nearest"))
        p4 = self.fuse4(f4 + nn.functional.interpolate(self.lat4(p8), scale_factor=2.0, mode="nearest"))
        out = {**self.det2d(p4), **self.det3d(p4), **self.pose(p4)}
        return tuple(out[k] for k in OUTPUT_NAMES)


def count_macs(model: nn.Module, input_hw: tuple[int, int]) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (convolutions only; they dominate)."""
    macs = 0

    def hook(mod: nn.Conv2d, _inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal macs
        k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
        macs += int(out.numel()) * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, *input_hw))
    for h in handles:
        h.remove()
    return macs
