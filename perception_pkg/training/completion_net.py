"""SoftPoolNet (softpoolnet.txt) in torch: point-wise MLP with softmax activations, soft pool by a
static-k TopK, regional convolutions as real parameters, coarse 256 then fine 2,048 points.

Structure (paper §3-5, SPECS.md), sizes of the default (reduced) network in brackets:

1. Point-wise MLP ``W_point`` on each input point [3 -> 64 -> 128], leaky ReLU, and a 1x1 head to
   ``N_f = R`` = 8 channels with a softmax over them: the activations ``F`` (B, R, N), each point's
   probability of belonging to each of the R regions (paper Eq. 3).
2. Soft pool: for every region k the ``N_r`` = 32 points with the highest ``F[k]`` (``torch.topk``
   with a static k, sorted descending: ONNX TopK + GatherElements), giving ``F*`` (B, C, R, N_r). Each
   row carries the point's activations (8), its hidden feature (128) and its coordinates (3). The
   paper's literal ``F*`` is the 8 activations alone; the official code also concatenates the
   coordinates, and a decoder cannot rebuild a shape from 8 softmax values per row, so the hidden
   feature rides along (ours).
3. Regional convolution ``W_conv`` (paper Eq. 1): a Conv2d over (regions, rows) with kernel
   (1, N_p = 32): it slides inside one region only, each region padded at its end with N_p - 1 copies
   of its last row (``F.pad(mode="replicate")``, ONNX Pad edge) so the output keeps N_r rows; leaky
   ReLU 0.2 after it. A global feature (max over the pooled rows' hidden features, so still a
   function of the soft pool only) is concatenated to every row, then 1x1 convolutions give the
   coarse points: R x N_r = 256.
4. Fine stage: the paper's regional convolution with stride 1/u (u = 2,048 / 256 = 8): u - 1 new
   rows are interpolated between consecutive rows of each region (a fixed interpolation matrix,
   ONNX MatMul), a learned code of the position t in 0..u-1 is appended, and a second regional
   convolution (kernel (1, 8), end padding) with 1x1 layers predicts offsets from the interpolated
   coarse points: 2,048 fine points.

The official code builds its Conv2d layers inside ``forward()``, so they are re-initialised every call,
never trained and never saved. Here every layer is an ``nn.Module`` attribute made in ``__init__``.

Order invariance: every step is per point, a TopK over points, or a max over pooled rows, so
permuting the input permutes nothing downstream. Ties in TopK: TopK sorts by the log-odds of the
activation (``encode``), which orders points exactly as the softmax value does but does not round to
1.0: on the softmax itself a trained network had 76% of adjacent top-32 values tied at 1.0f, and
torch and ONNX Runtime (and a shuffled input) broke those ties differently. Duplicated input points
(the host fills sparse objects up to 1,024 by duplication) still tie exactly, but their rows are
identical, so whichever copy TopK takes, ``F*`` is the same; two *different* points with bit-identical
logits would be a real tie (measure zero for real coordinates) and are not broken further.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SoftPoolConfig:
    n_in: int = 1024
    regions: int = 8  # N_f = R
    rows: int = 32  # N_r: rows kept per region -> regions * rows coarse points
    mlp: tuple[int, ...] = (64, 128)  # paper [512, 512] (+ the 8-channel head)
    proj: int = 64  # 1x1 projection of F* rows before the first regional convolution
    coarse_ch: int = 96  # channels out of the first regional convolution
    kernel: int = 32  # N_p (paper: 32 best)
    fine: int = 2048
    fine_ch: int = 32
    fine_kernel: int = 8
    grid_ch: int = 8

    @property
    def coarse(self) -> int:
        return self.regions * self.rows

    @property
    def up(self) -> int:
        if self.fine % self.coarse:
            raise ValueError(f"fine {self.fine} must be a multiple of coarse {self.coarse}")
        return self.fine // self.coarse

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mlp"] = list(self.mlp)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SoftPoolConfig:
        d = dict(d)
        d["mlp"] = tuple(d.get("mlp", cls.mlp))
        return cls(**d)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


def interpolation_matrix(rows: int, up: int) -> torch.Tensor:
    """(rows, rows * up): column i*up + t = (1 - t/up) e_i + (t/up) e_{i+1} (the last row repeats)."""
    m = torch.zeros(rows, rows * up)
    for i in range(rows):
        for t in range(up):
            w = t / up
            m[i, i * up + t] += 1 - w
            m[min(i + 1, rows - 1), i * up + t] += w
    return m


class RegionalConv(nn.Module):
    """Conv2d over (region, row) with kernel (1, k): within one region, end-padded by k - 1 copies."""

    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.conv = nn.Conv2d(cin, cout, kernel_size=(1, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, self.k - 1, 0, 0), mode="replicate"))


class SoftPoolNet(nn.Module):
    """``forward(points (B, n_in, 3))`` -> dict with ``coarse`` (B, 256, 3), ``fine`` (B, 2048, 3) and,
    for the losses, ``activations`` (B, R, N), ``pooled_act`` (B, R, R, N_r) (activations of the pooled
    rows: region, then the row's own R activations) and ``pooled_idx`` (B, R, N_r)."""

    def __init__(self, config: SoftPoolConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or SoftPoolConfig()
        layers, cin = [], 3
        for w in c.mlp:
            layers.append(nn.Conv1d(cin, w, 1))
            cin = w
        self.mlp = nn.ModuleList(layers)
        self.hidden = cin
        self.head = nn.Conv1d(cin, c.regions, 1)
        # a default-initialised head gives near-uniform softmax activations: the uniform point is a
        # stationary point of the entropy losses, where L_intra has no gradient to leave it (ours)
        nn.init.normal_(self.head.weight, std=1.0)
        row_ch = c.regions + self.hidden + 3
        self.proj = nn.Conv2d(row_ch, c.proj, 1)
        self.regconv1 = RegionalConv(c.proj, c.coarse_ch, c.kernel)
        self.coarse_mix = nn.Conv2d(c.coarse_ch + self.hidden, c.coarse_ch, 1)
        self.coarse_out = nn.Conv2d(c.coarse_ch, 3, 1)
        self.fine_proj = nn.Conv2d(c.coarse_ch, c.fine_ch, 1)
        self.register_buffer("interp", interpolation_matrix(c.rows, c.up), persistent=False)
        self.register_buffer(
            "diagonal", torch.eye(c.regions, dtype=torch.bool)[None, :, :, None], persistent=False
        )
        self.grid = nn.Parameter(torch.randn(c.grid_ch, c.up) * 0.5)
        self.regconv2 = RegionalConv(c.fine_ch + c.grid_ch + 3, c.fine_ch, c.fine_kernel)
        self.fine_mix = nn.Conv2d(c.fine_ch, c.fine_ch, 1)
        self.fine_out = nn.Conv2d(c.fine_ch, 3, 1)

    def encode(self, points: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Activations (B, R, N), hidden features (B, D, N), coordinates (B, 3, N) and the soft pool's
        sort key (B, R, N): the log-odds of each activation, log(F_k / (1 - F_k)) =
        logit_k - logsumexp_{j != k} logit_j. It orders the points exactly as F_k does (a monotonic
        function of it) but does not saturate: a trained head puts many points at F_k = 1.0 in float32,
        and TopK on those exact ties picks different points in torch and ONNX Runtime, and after a
        shuffle."""
        x = points.transpose(1, 2)
        h = x
        for layer in self.mlp:
            h = _lrelu(layer(h))
        logits = self.head(h)
        act = torch.softmax(logits, dim=1)
        b, r, n = logits.shape
        others = logits.unsqueeze(1).expand(b, r, r, n).masked_fill(self.diagonal, -1e9)  # [b, k, j, n]
        # logsumexp written out (max, exp, sum, log): the same arithmetic as torch.logsumexp, but
        # exported as ops onnxruntime vectorises; its ReduceLogSumExp took 14 of 73 ms for 10 cars
        peak = others.amax(dim=2, keepdim=True)
        key = logits - (peak + torch.log(torch.exp(others - peak).sum(dim=2, keepdim=True))).squeeze(2)
        return act, h, x, key

    def forward(self, points: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        b = points.shape[0]
        act, h, x, key = self.encode(points)
        # soft pool: top N_r rows per region by that region's activation (its log-odds; static k)
        _, idx = torch.topk(key, c.rows, dim=2, largest=True, sorted=True)  # (B, R, N_r)
        rows = torch.cat([act, h, x], dim=1)  # (B, C, N)
        ch = rows.shape[1]
        flat = idx.reshape(b, 1, c.regions * c.rows).expand(b, ch, c.regions * c.rows)
        pooled = torch.gather(rows, 2, flat).reshape(b, ch, c.regions, c.rows)  # F* (B, C, R, N_r)
        glob = pooled[:, c.regions : c.regions + self.hidden].amax(dim=(2, 3), keepdim=True)
        # coarse: regional convolution inside each region, then the global feature on every row
        y = _lrelu(self.proj(pooled))
        y = _lrelu(self.regconv1(y))
        y = _lrelu(self.coarse_mix(torch.cat([y, glob.expand(-1, -1, c.regions, c.rows)], dim=1)))
        coarse = self.coarse_out(y)  # (B, 3, R, N_r)
        # fine: stride 1/u regional convolution (rows interpolated within each region)
        z = torch.matmul(_lrelu(self.fine_proj(y)), self.interp)  # (B, fine_ch, R, N_r*u)
        base = torch.matmul(coarse, self.interp)  # (B, 3, R, N_r*u)
        grid = self.grid.repeat(1, c.rows).reshape(1, c.grid_ch, 1, c.rows * c.up)
        grid = grid.expand(b, c.grid_ch, c.regions, c.rows * c.up)
        z = _lrelu(self.regconv2(torch.cat([z, grid, base], dim=1)))
        z = _lrelu(self.fine_mix(z))
        fine = base + self.fine_out(z)
        return {
            "coarse": coarse.reshape(b, 3, c.coarse).transpose(1, 2),
            "fine": fine.reshape(b, 3, c.fine).transpose(1, 2),
            "activations": act,
            "pooled_act": pooled[:, : c.regions],
            "pooled_idx": idx,
        }


class ExportWrapper(nn.Module):
    """What the ONNX graph computes: points (B, n_in, 3) -> (coarse, fine)."""

    def __init__(self, net: SoftPoolNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(points)
        return out["coarse"], out["fine"]


def build(config: dict | None = None, weights: str | None = None) -> SoftPoolNet:
    """Factory for the torch backend and the card (``torch.factory``): the net, weights loaded if given."""
    net = SoftPoolNet(SoftPoolConfig.from_dict(config) if config else None)
    if weights:
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net.eval()
