"""ForkGAN (forkgan.txt) at the paper's widths and as a real-time variant built of MobileNeXt sandglass blocks
(mobilenext_sandglass.txt), the discriminators and classifiers that train it, and the curve baseline.

Generator, per domain d (X = adverse weather, Y = clear): an encoder ``E_d`` and two decoders, the
translation decoder ``G^t_d`` (renders a latent in domain d) and the reconstruction decoder ``G^r_d``.
Inference adverse -> clear is ``G^t_y(E_x(I))`` (:class:`Restorer`, what is exported); the optional
refinement ``G^r_y(E_y(.))`` of the paper doubles the cost and is not used.

- ``paper``: E = 7x7 conv 64, two stride-2 3x3 convs (128, 256), 4 dilated residual blocks at 256; G = 4
  residual blocks, two stride-2 deconvs (128, 64), 7x7 conv to RGB, tanh; instance norm throughout.
- ``realtime`` (ours): E = a stride-2 3x3 conv (16) and a stride-2 depthwise-separable conv to ``width``,
  then sandglass blocks at stride 4 (depthwise 3x3 + ReLU6 -> 1x1 linear reduction by ``t`` -> 1x1
  expansion + ReLU6 -> depthwise 3x3 linear, shortcut between the wide ends; dilations 1, 2, 1, 2 like
  the paper's dilated blocks). G = sandglass blocks, 1x1 to ``up`` channels, bilinear x2, a
  depthwise-separable 3x3 conv at stride 2. The translation decoder (``image_skip``) also sees the input
  at stride 2 and predicts per-pixel curve maps, upsampled and applied to the full-resolution input,
  ``out = x^p G + b`` in [0, 1] (p = exp of one map, G = exp of three, b three; zero maps are the
  identity): fog (J = (I - A (1 - t)) / t) is such a gain and bias, low light (g x^gamma) such a power
  and gain; detail comes from the input pixels instead of being re-synthesised from a stride-4 latent,
  and nothing heavier than a resize runs at full resolution. The
  reconstruction decoders render RGB at stride 2 and upsample it. No normalisation (the statistics of a
  160x120 training crop and a 640x480 frame differ; nothing to fold at export); each residual branch has
  a learnt scale starting at 0.1 instead.

Discriminators: per image domain a multi-scale LSGAN PatchGAN (2 scales, the second on a 2x average-pooled
copy). :class:`DomainClassifier` on the latents (paper: 4 Conv-IN-ReLU blocks, an adversarial conv
branch and a fully connected classification branch). :class:`ConditionNet` (ours) names a frame's
condition from a 160x120 thumbnail: the latents are trained to be domain-invariant, so they cannot carry
it. :class:`CurveNet`: the Zero-DCE++ baseline (7 depthwise-separable convs of 32 channels on a
downscaled copy, 3 curve maps upsampled, LE(x) = x + a x (1 - x) applied 8 times).

:func:`count_macs` counts multiply-accumulates with forward hooks (convolutions, transposed convolutions
and linear layers; element-wise work is left out, as is usual), :func:`count_params` parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

IMAGE_CH = 3


def _act(kind: str) -> nn.Module:
    return nn.ReLU6(inplace=True) if kind == "relu6" else nn.ReLU(inplace=True)


def _norm(kind: str, ch: int) -> nn.Module:
    return nn.InstanceNorm2d(ch, affine=True) if kind == "instance" else nn.Identity()


class SandglassBlock(nn.Module):
    """MobileNeXt sandglass block (Table 1): dw3x3+ReLU6 -> 1x1 reduce (linear) -> 1x1 expand+ReLU6 ->
    dw3x3 (linear, stride s). The first depthwise conv is dropped for stride 2; shortcut when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int = 1, t: int = 4, dilation: int = 1) -> None:
        super().__init__()
        hidden = max(cin // t, 8)
        layers: list[nn.Module] = []
        if stride == 1:
            layers += [nn.Conv2d(cin, cin, 3, 1, dilation, dilation, groups=cin), nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(cin, hidden, 1),
            nn.Conv2d(hidden, cout, 1),
            nn.ReLU6(inplace=True),
            nn.Conv2d(cout, cout, 3, stride, dilation, dilation, groups=cout),
        ]
        self.body = nn.Sequential(*layers)
        self.shortcut = stride == 1 and cin == cout
        self.scale = nn.Parameter(torch.full((1, cout, 1, 1), 0.1)) if self.shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + self.scale * y if self.scale is not None else y


class ResidualBlock(nn.Module):
    """The paper's dilated residual block: (3x3 conv, IN, ReLU, 3x3 conv, IN) + identity."""

    def __init__(self, ch: int, dilation: int = 1, norm: str = "instance") -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, 1, dilation, dilation),
            _norm(norm, ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 3, 1, dilation, dilation),
            _norm(norm, ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@dataclass(frozen=True)
class ForkConfig:
    kind: str = "realtime"  # "realtime" (sandglass) or "paper" (residual)
    width: int = 96  # latent channels (paper: 256)
    enc_blocks: int = 4
    dec_blocks: int = 4
    t: int = 4  # sandglass reduction ratio
    stem: int = 16  # realtime stride-2 conv width (paper: 64 -> 128 -> 256)
    up: int = 24  # realtime decoder width at stride 2
    image_skip: bool = True  # realtime translation decoder sees the input image at its last conv

    @staticmethod
    def paper() -> ForkConfig:
        return ForkConfig(kind="paper", width=256, enc_blocks=4, dec_blocks=4, image_skip=False)


def _blocks(cfg: ForkConfig, n: int) -> list[nn.Module]:
    dil = [1, 2] * n
    if cfg.kind == "paper":
        return [ResidualBlock(cfg.width, dil[i]) for i in range(n)]
    return [SandglassBlock(cfg.width, cfg.width, 1, cfg.t, dil[i]) for i in range(n)]


class Encoder(nn.Module):
    def __init__(self, cfg: ForkConfig) -> None:
        super().__init__()
        if cfg.kind == "paper":
            w = cfg.width
            stem = [
                nn.Conv2d(IMAGE_CH, w // 4, 7, 1, 3),
                _norm("instance", w // 4),
                nn.ReLU(inplace=True),
                nn.Conv2d(w // 4, w // 2, 3, 2, 1),
                _norm("instance", w // 2),
                nn.ReLU(inplace=True),
                nn.Conv2d(w // 2, w, 3, 2, 1),
                _norm("instance", w),
                nn.ReLU(inplace=True),
            ]
        else:
            a = cfg.stem
            stem = [
                nn.Conv2d(IMAGE_CH, a, 3, 2, 1),
                nn.ReLU6(inplace=True),
                nn.Conv2d(a, a, 3, 2, 1, groups=a),
                nn.Conv2d(a, cfg.width, 1),
                nn.ReLU6(inplace=True),
            ]
        self.body = nn.Sequential(*stem, *_blocks(cfg, cfg.enc_blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Decoder(nn.Module):
    """Latent (stride 4) -> RGB in [-1, 1]; with ``image_skip`` also given the image it came from."""

    def __init__(self, cfg: ForkConfig, image_skip: bool = False) -> None:
        super().__init__()
        self.paper = cfg.kind == "paper"
        self.image_skip = image_skip and not self.paper
        w = cfg.width
        self.blocks = nn.Sequential(*_blocks(cfg, cfg.dec_blocks))
        if cfg.kind == "paper":
            self.up = nn.Sequential(
                nn.ConvTranspose2d(w, w // 2, 3, 2, 1, output_padding=1),
                _norm("instance", w // 2),
                nn.ReLU(inplace=True),
                nn.ConvTranspose2d(w // 2, w // 4, 3, 2, 1, output_padding=1),
                _norm("instance", w // 4),
                nn.ReLU(inplace=True),
            )
            self.out = nn.Conv2d(w // 4, IMAGE_CH, 7, 1, 3)
        else:
            a = cfg.up
            self.to_half = nn.Sequential(
                nn.Conv2d(w, a, 1),
                nn.ReLU6(inplace=True),
                nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False),
            )
            cin = a + (IMAGE_CH if self.image_skip else 0)
            self.mix = nn.Sequential(
                nn.Conv2d(cin, cin, 3, 1, 1, groups=cin), nn.Conv2d(cin, a, 1), nn.ReLU6(inplace=True)
            )
            # translation: per-pixel curve maps (1 power, 3 log-gains, 3 biases) applied to the
            # full-resolution input; reconstruction: RGB at stride 2, upsampled
            self.out = nn.Conv2d(a, 1 + 2 * IMAGE_CH if self.image_skip else IMAGE_CH, 1)
            if self.image_skip:
                nn.init.zeros_(self.out.weight)
                nn.init.zeros_(self.out.bias)
            self.to_full = nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False)

    def forward(self, z: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        if self.paper:
            return torch.tanh(self.out(self.up(self.blocks(z))))
        f = self.to_half(self.blocks(z))
        if not self.image_skip:
            return torch.tanh(self.to_full(self.out(self.mix(f))))
        if image is None:
            raise ValueError("this decoder needs the source image")
        f = self.mix(torch.cat([f, F.avg_pool2d(image, 2)], dim=1))
        m = self.to_full(self.out(f))
        power = torch.exp(m[:, :1].clamp(-3.0, 3.0))
        gain = torch.exp(m[:, 1 : 1 + IMAGE_CH].clamp(-4.0, 4.0))
        bias = m[:, 1 + IMAGE_CH :]
        unit = ((image + 1.0) * 0.5).clamp_min(1e-3)
        return ((unit.pow(power) * gain + bias).clamp(0.0, 1.0) - 0.5) * 2.0


class ForkGenerator(nn.Module):
    """Both domains' encoders and decoders: ``enc_x, enc_y, trans_x, trans_y, recon_x, recon_y``."""

    def __init__(self, cfg: ForkConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.enc_x, self.enc_y = Encoder(cfg), Encoder(cfg)
        self.trans_x, self.trans_y = Decoder(cfg, cfg.image_skip), Decoder(cfg, cfg.image_skip)
        self.recon_x, self.recon_y = Decoder(cfg), Decoder(cfg)

    def restore(self, x: torch.Tensor) -> torch.Tensor:
        """Adverse -> clear: G^t_y(E_x(x))."""
        return self.trans_y(self.enc_x(x), x)

    def restorer(self) -> Restorer:
        return Restorer(self.enc_x, self.trans_y)


class Restorer(nn.Module):
    """What is exported: ``E_x`` + ``G^t_y``, input and output RGB in [-1, 1] (NCHW)."""

    def __init__(self, enc: Encoder, dec: Decoder) -> None:
        super().__init__()
        self.enc, self.dec = enc, dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc(x), x)


class DeployedRestorer(nn.Module):
    """The graph the node runs: :class:`Restorer`'s weights with the trunk on a ``trunk_scale``-times
    average-pooled copy of the frame and the curve maps applied to the full-resolution input.

    Why: fog, low light and their inverses are smooth per-pixel curves (the maps), and detail comes from
    the input pixels, so the maps can be estimated on a thumbnail. At 640x480 with ``trunk_scale`` 4 the
    trunk sees 160x120, the size of the training crops, and the cost drops from 1.16 to 0.07 GMAC
    (measured on the tuning set: fog PSNR and detection AP50 equal to or above the full-resolution
    trunk's; README, "Adverse-weather restoration"). What still runs at full resolution is element-wise
    and written for onnxruntime's fast kernels: ``exp``/``clamp`` on the small maps before the bilinear
    upsampling (one resize per map group, no full-resolution split) and ``x^p`` as ``exp(p log x)``
    (its ``Pow`` kernel took 4 ms of a 10 ms frame); the output's [-1, 1] range is folded into gain and
    bias. ``trunk_scale`` 1 computes what :class:`Restorer` does up to the order of exp and resize.
    """

    def __init__(self, enc: Encoder, dec: Decoder, trunk_scale: int = 4) -> None:
        super().__init__()
        if not dec.image_skip:
            raise ValueError("only the curve-map (image_skip) translation decoder can be deployed scaled")
        if trunk_scale < 1:
            raise ValueError(f"trunk_scale must be >= 1, got {trunk_scale}")
        self.enc, self.dec, self.trunk_scale = enc, dec, int(trunk_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.dec
        small = F.avg_pool2d(x, self.trunk_scale) if self.trunk_scale > 1 else x
        f = d.to_half(d.blocks(self.enc(small)))
        m = d.out(d.mix(torch.cat([f, F.avg_pool2d(small, 2)], dim=1)))
        hw = x.shape[-2:]

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, size=hw, mode="bilinear", align_corners=False)

        power = up(torch.exp(m[:, :1].clamp(-3.0, 3.0)))
        gain = up(torch.exp(m[:, 1 : 1 + IMAGE_CH].clamp(-4.0, 4.0)) * 2.0)
        bias = up(m[:, 1 + IMAGE_CH :] * 2.0 - 1.0)
        unit = ((x + 1.0) * 0.5).clamp_min(1e-3)
        return (torch.exp(power * torch.log(unit)) * gain + bias).clamp(-1.0, 1.0)


class PatchDiscriminator(nn.Module):
    """PatchGAN: 4x4 stride-2 convs (ndf, 2ndf, 4ndf) with IN and LeakyReLU, then a 4x4 conv to one map."""

    def __init__(self, ndf: int = 32, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(IMAGE_CH, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        ch = ndf
        for _ in range(layers - 1):
            mods += [
                nn.Conv2d(ch, ch * 2, 4, 2, 1),
                nn.InstanceNorm2d(ch * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            ch *= 2
        mods += [nn.Conv2d(ch, 1, 4, 1, 1)]
        self.body = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, ndf: int = 32, scales: int = 2) -> None:
        super().__init__()
        self.nets = nn.ModuleList(PatchDiscriminator(ndf) for _ in range(scales))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, net in enumerate(self.nets):
            outs.append(net(x if i == 0 else F.avg_pool2d(x, 2**i)))
        return outs


class DomainClassifier(nn.Module):
    """On latents: 4 Conv-IN-ReLU blocks, an adversarial branch (one conv -> real/fake map) and a
    classification branch (global pool + one linear layer -> domain logits)."""

    def __init__(self, cin: int, width: int = 64, domains: int = 2) -> None:
        super().__init__()
        chans = [cin, width, width, 2 * width, 2 * width]
        mods: list[nn.Module] = []
        for i in range(4):
            mods += [
                nn.Conv2d(chans[i], chans[i + 1], 3, 2 if i < 2 else 1, 1),
                nn.InstanceNorm2d(chans[i + 1], affine=True),
                nn.ReLU(inplace=True),
            ]
        self.backbone = nn.Sequential(*mods)
        self.adv = nn.Conv2d(chans[-1], 1, 3, 1, 1)
        self.cls = nn.Linear(chans[-1], domains)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(z)
        return self.adv(f), self.cls(f.mean(dim=(2, 3)))


class ConditionNet(nn.Module):
    """Condition logits from an RGB thumbnail in [-1, 1]: four stride-2 3x3 convs (16, 32, 64, 64), then
    the global mean and standard deviation of the last features -> linear."""

    def __init__(self, classes: int = 5, width: int = 16) -> None:
        super().__init__()
        w = width
        chans = [IMAGE_CH, w, 2 * w, 4 * w, 4 * w]
        mods: list[nn.Module] = []
        for i in range(4):
            mods += [nn.Conv2d(chans[i], chans[i + 1], 3, 2, 1), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*mods)
        self.fc = nn.Linear(2 * chans[-1], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        mean = f.mean(dim=(2, 3))
        std = (f - mean[:, :, None, None]).pow(2).mean(dim=(2, 3)).add(1e-6).sqrt()
        return self.fc(torch.cat([mean, std], dim=1))


class _DSConv(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, 1, 1, groups=cin)
        self.pw = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class CurveNet(nn.Module):
    """Zero-DCE++: input and output RGB in [0, 1] (NCHW). Curve maps are estimated on a copy downscaled
    by ``scale`` (bilinear) and upsampled to the input size; ``iterations`` curve applications."""

    def __init__(self, width: int = 32, scale: int = 4, iterations: int = 8) -> None:
        super().__init__()
        w = width
        self.scale, self.iterations = scale, iterations
        self.e1, self.e2, self.e3, self.e4 = _DSConv(3, w), _DSConv(w, w), _DSConv(w, w), _DSConv(w, w)
        self.e5, self.e6, self.e7 = _DSConv(2 * w, w), _DSConv(2 * w, w), _DSConv(2 * w, 3)

    def curves(self, x: torch.Tensor) -> torch.Tensor:
        s = F.interpolate(x, scale_factor=1.0 / self.scale, mode="bilinear", align_corners=False)
        e1 = F.relu(self.e1(s))
        e2 = F.relu(self.e2(e1))
        e3 = F.relu(self.e3(e2))
        e4 = F.relu(self.e4(e3))
        e5 = F.relu(self.e5(torch.cat([e3, e4], 1)))
        e6 = F.relu(self.e6(torch.cat([e2, e5], 1)))
        a = torch.tanh(self.e7(torch.cat([e1, e6], 1)))
        return F.interpolate(a, size=x.shape[2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.curves(x)
        for _ in range(self.iterations):
            x = x + a * (x - x * x)
        return x.clamp(0.0, 1.0)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_macs(module: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass (Conv2d, ConvTranspose2d and Linear layers)."""
    macs = 0

    def conv(mod: nn.Conv2d, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
        macs += int(out.numel()) * k

    def deconv(mod: nn.ConvTranspose2d, inp: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        nonlocal macs  # every input element is multiplied into k*k*cout/groups outputs
        k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.out_channels // mod.groups)
        macs += int(inp[0].numel()) * k

    def linear(mod: nn.Linear, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        macs += int(out.numel()) * mod.in_features

    handles = []
    for m in module.modules():
        if isinstance(m, nn.ConvTranspose2d):
            handles.append(m.register_forward_hook(deconv))
        elif isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear))
    was_training = module.training
    try:
        with torch.no_grad():
            module.eval()(*inputs)
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    return macs


def restorer_cost(cfg: ForkConfig, hw: tuple[int, int], trunk_scale: int = 1) -> dict[str, float]:
    """GMAC and parameters of the exported restorer (E_x + G^t_y; with ``trunk_scale`` > 1 the deployed
    graph, :class:`DeployedRestorer`) and of the whole generator."""
    enc, trans, recon = Encoder(cfg), Decoder(cfg, cfg.image_skip), Decoder(cfg)
    x = torch.zeros(1, IMAGE_CH, *hw)
    r = DeployedRestorer(enc, trans, trunk_scale) if trunk_scale > 1 else Restorer(enc, trans)
    return {
        "gmac": count_macs(r, x) / 1e9,
        "params_restorer": count_params(r),
        "params_generator": 2 * (count_params(enc) + count_params(trans) + count_params(recon)),
        "refine_gmac": count_macs(Restorer(enc, recon), x) / 1e9,  # G^r_y(E_y(.)): the paper's refinement
    }
