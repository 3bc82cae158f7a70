"""Train the sim top-down pose network (three heads), export it to ONNX and write its model cards.

    python -m perception_pkg.training.pose_train --input 128x96 --epochs 11 --train-scenes 200 --out DIR
    python -m perception_pkg.training.pose_train ... --init DIR/model_128x96.pt   # a continuation stage

(models/sim_pose/README.md lists the exact stages behind the shipped models.)

Reproducible: scene seeds fix the data (``pose_data``), ``--seed`` fixes initialisation, augmentation
and batch order, and training runs on one CPU thread (``torch.set_num_threads(1)``) so the same command on
the same machine gives the same weights. bf16 autocast is on by default at 128x96 input, where it measured
~2x faster per step on this CPU (13.6 -> 7.0 ms per crop; at 64x48 the gain is small); losses are computed
in float32 either way.

Losses, all on the stride-4 grid in heatmap cells (``pose.geometry`` "cell" alignment, ``u = x / 4 - 0.5``):

- ``heatmaps``: MSE to unnormalised Gaussians (peak 1, ``sigma_hm`` cells, centred at the sub-cell target),
  summed over each map; maps of unlabelled keypoints have an all-zero target.
- ``integral``: L1 between the soft-argmax expectation (integral_human_pose_regression.txt, Eq. 5) and the
  target, labelled keypoints inside the map only.
- mass displacement (mass_displacement_networks.txt, "local" voting, ``d = eps_c``): ``c`` BCE to binary
  disks of radius ``eps_c`` cells; ``o = (target - x) / d`` with a Huber loss inside the disks.

The mass-displacement heads are trained with the paper's per-stage losses only (its variant without the
end-to-end loss on the voted map). The run exports ``<stem>.onnx`` and the flip-averaged ``<stem>_flip.onnx``
before evaluating every decoder on held-out seeds (``pose_metrics``), so the cards carry measured accuracy;
``benchmarks/pose_decoder_table.py`` makes the full comparison on a larger held-out set.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from perception_pkg.pose.coco17 import NUM_KEYPOINTS, flip_permutation
from perception_pkg.training.pose_cards import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    OUTPUT_NAMES,
    STRIDE,
    write_cards,
)
from perception_pkg.training.pose_data import PoseSet, get_set, get_train_set, heldout_spec, train_spec
from perception_pkg.training.pose_model import FlipAveraged, SimPoseNet


def parse_size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``perception train pose`` (also this module's ``__main__``)."""
    parser.add_argument("--input", type=parse_size, default=(128, 96), help="crop HxW (default 128x96)")
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--width", type=int, default=32, help="network width (channels at stride 4)")
    parser.add_argument("--seed", type=int, default=0, help="init / augmentation / order seed")
    parser.add_argument("--init", type=Path, default=None, help="continue from these weights (.pt)")
    parser.add_argument("--train-scenes", type=int, default=100, help="training scene seeds 0..n-1")
    parser.add_argument("--heldout-scenes", type=int, default=20, help="held-out seeds from 100000")
    parser.add_argument("--max-crops", type=int, default=None, help="use only the first n training crops")
    parser.add_argument("--sigma-hm", type=float, default=None, help="heatmap target sigma (cells)")
    parser.add_argument("--eps-c", type=float, default=None, help="mass-displacement disk radius = d")
    parser.add_argument("--bf16", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", type=Path, default=None, help="export ONNX + cards into this folder")
    parser.add_argument("--name", default=None, help="ONNX file stem (default model / model_<HxW>)")
    parser.add_argument("--default-card", action="store_true", help="also write card.yaml (best decoder)")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--no-cache", action="store_true", help="render without reading/writing the cache")
    parser.add_argument("--no-eval", action="store_true")
    parser.add_argument("--quiet", action="store_true")


def default_sigma(map_hw: tuple[int, int]) -> float:
    """Heatmap sigma in cells: 1.5 on 32x24 maps, 1.0 on 16x12 (SimpleBaseline uses 2 on 64x48; sim
    people fill less of their crop's height, so the maps are relatively finer)."""
    return 1.5 if map_hw[1] >= 24 else 1.0


def default_eps(map_hw: tuple[int, int]) -> float:
    return 2.0 if map_hw[1] >= 24 else 1.5


# --- augmentation -------------------------------------------------------------------------------------


def random_affines(n: int, hw: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-crop augmentation maps (n, 2, 3) in continuous crop pixels, and which are mirrored.

    Scale 0.75-1.25, rotation +-30 deg on 60 % of crops, shift +-6 % of the size, mirror with p 0.5, all
    about the crop centre (the person's box centre), so the person stays the one in the middle.
    """
    h, w = hw
    s = rng.uniform(0.75, 1.25, n)
    r = np.where(rng.random(n) < 0.6, np.deg2rad(rng.uniform(-30, 30, n)), 0.0)
    flip = rng.random(n) < 0.5
    tx, ty = rng.uniform(-0.06, 0.06, n) * w, rng.uniform(-0.06, 0.06, n) * h
    c, sn = np.cos(r) * s, np.sin(r) * s
    fx = np.where(flip, -1.0, 1.0)
    lin = np.stack([np.stack([c * fx, -sn], -1), np.stack([sn * fx, c], -1)], -2)  # rotate(scale(mirror))
    centre = np.array([w / 2, h / 2])
    t = centre - lin @ centre + np.stack([tx, ty], -1)
    return np.concatenate([lin, t[..., None]], -1), flip


def warp_batch(images: torch.Tensor, maps: np.ndarray) -> torch.Tensor:
    """Apply (n, 2, 3) pixel maps (src crop -> augmented crop) to (n, 3, H, W) with one grid_sample.

    ``affine_grid`` wants output -> input in [-1, 1] coordinates; with ``align_corners=False`` those are
    ``2 x / W - 1`` of the continuous pixel frame, exactly the stack's convention.
    """
    n, _, h, w = images.shape
    norm = np.array([[2 / w, 0, -1], [0, 2 / h, -1], [0, 0, 1]])
    a = np.concatenate([maps, np.tile([[[0.0, 0.0, 1.0]]], (n, 1, 1))], 1)
    theta = norm @ np.linalg.inv(a) @ np.linalg.inv(norm)
    grid = F.affine_grid(torch.from_numpy(theta[:, :2]).float(), [n, 3, h, w], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def normalise(images01: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images01 - mean) / std


def to_input(crops_rgb: np.ndarray) -> torch.Tensor:
    """RGB uint8 (n, H, W, 3) -> normalised (n, 3, H, W) float32, as the card's preprocessing does."""
    return normalise(torch.from_numpy(crops_rgb).permute(0, 3, 1, 2).float() / 255.0)


# --- targets and losses -------------------------------------------------------------------------------


def heatmap_targets(
    u: torch.Tensor, labelled: torch.Tensor, map_hw: tuple[int, int], sigma: float, eps: float
) -> dict[str, torch.Tensor]:
    """Targets on the (H, W) grid for keypoints ``u`` (n, K, 2) in heatmap cells."""
    h, w = map_hw
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    dx = u[..., 0, None, None] - xs  # target - x: the sign convention of o
    dy = u[..., 1, None, None] - ys
    d2 = dx * dx + dy * dy
    lab = labelled[..., None, None].float()
    disk = (d2 <= eps * eps).float() * lab
    return {
        "hm": torch.exp(-d2 / (2 * sigma * sigma)) * lab,
        "disk": disk,
        "ox": dx / eps,
        "oy": dy / eps,
    }


def soft_argmax_torch(logits: torch.Tensor) -> torch.Tensor:
    """(n, K, H, W) logits -> (n, K, 2) expectation in cells (the training twin of ``pose.integral``)."""
    n, k, h, w = logits.shape
    p = torch.softmax(logits.reshape(n, k, h * w).float(), dim=-1).reshape(n, k, h, w)
    x = (p.sum(dim=2) * torch.arange(w, dtype=torch.float32)).sum(-1)
    y = (p.sum(dim=3) * torch.arange(h, dtype=torch.float32)).sum(-1)
    return torch.stack([x, y], -1)


def losses(
    outputs: tuple[torch.Tensor, ...],
    u: torch.Tensor,
    labelled: torch.Tensor,
    inside: torch.Tensor,
    sigma: float,
    eps: float,
) -> dict[str, torch.Tensor]:
    hm, integral, c_logit, ox, oy = (o.float() for o in outputs)
    tg = heatmap_targets(u, labelled & inside, tuple(hm.shape[-2:]), sigma, eps)
    out = {"hm": ((hm - tg["hm"]) ** 2).sum(dim=(-2, -1)).mean()}
    m = (labelled & inside).float()
    j = soft_argmax_torch(integral)
    out["integral"] = ((j - u).abs().sum(-1) * m).sum() / m.sum().clamp(min=1)
    bce = F.binary_cross_entropy_with_logits(c_logit, tg["disk"], reduction="none").sum(dim=(-2, -1))
    out["md_c"] = 0.2 * bce.mean()
    disk = tg["disk"]
    huber = F.smooth_l1_loss(ox, tg["ox"], reduction="none", beta=0.1) + F.smooth_l1_loss(
        oy, tg["oy"], reduction="none", beta=0.1
    )
    out["md_o"] = (huber * disk).sum() / disk.sum().clamp(min=1)
    return out


# --- training ------------------------------------------------------------------------------------------


def train(
    data: PoseSet,
    input_hw: tuple[int, int],
    epochs: int,
    batch: int = 32,
    lr: float = 2e-3,
    width: int = 32,
    seed: int = 0,
    bf16: bool = False,
    sigma: float | None = None,
    eps: float | None = None,
    log: Any = print,
    init: Path | None = None,
) -> tuple[SimPoseNet, dict[str, Any]]:
    """Train on ``data.crops[input_hw]``; returns the model (eval mode) and a record of the run.

    ``init``: a state dict (``.pt``) to start from instead of a seeded initialisation (a continuation run;
    the seed still fixes augmentation and batch order)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    map_hw = (input_hw[0] // STRIDE, input_hw[1] // STRIDE)
    sigma = sigma or default_sigma(map_hw)
    eps = eps or default_eps(map_hw)
    model = SimPoseNet(NUM_KEYPOINTS, width)
    if init is not None:
        model.load_state_dict(torch.load(init, map_location="cpu", weights_only=True))
    model = model.to(memory_format=torch.channels_last)
    crops = torch.from_numpy(data.crops[input_hw]).permute(0, 3, 1, 2)  # uint8 view, no copy
    kp = data.kp_crop[input_hw].astype(np.float64)
    vis = data.keypoints[..., 2] > 0
    n = len(data)
    steps_per_epoch = max(1, n // batch)
    total = steps_per_epoch * epochs
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    warm = min(200, total // 10)
    flip_perm = flip_permutation()  # mirrored crops swap left/right keypoints

    def lr_at(step: int) -> float:  # linear warm-up, cosine decay to 2 % of lr
        if step < warm:
            return lr * (step + 1) / warm
        return lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm))))

    t0 = time.perf_counter()
    step = 0
    history = []
    model.train()
    for epoch in range(epochs):
        order = rng.permutation(n)
        sums: dict[str, float] = {}
        for b in range(steps_per_epoch):
            idx = order[b * batch : (b + 1) * batch]
            maps, flip = random_affines(len(idx), input_hw, rng)
            images = warp_batch(crops[idx].float() / 255.0, maps)
            x = normalise(images).contiguous(memory_format=torch.channels_last)
            # keypoints follow the map; mirrored crops swap left/right channels
            p = np.einsum("nij,nkj->nki", maps[:, :, :2], kp[idx]) + maps[:, None, :, 2]
            v = vis[idx].copy()
            p[flip] = p[flip][:, flip_perm]
            v[flip] = v[flip][:, flip_perm]
            u = p / STRIDE - 0.5
            inside = (
                (u[..., 0] > -0.5)
                & (u[..., 0] < map_hw[1] - 0.5)
                & (u[..., 1] > -0.5)
                & (u[..., 1] < map_hw[0] - 0.5)
            )
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                outs = model.forward_train(x)
            parts = losses(
                outs, torch.from_numpy(u).float(), torch.from_numpy(v), torch.from_numpy(inside), sigma, eps
            )
            loss = sum(parts.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            for key, val in parts.items():
                sums[key] = sums.get(key, 0.0) + float(val.detach())
        means = {k: v / steps_per_epoch for k, v in sums.items()}
        history.append(means)
        log(
            f"epoch {epoch + 1}/{epochs} {time.perf_counter() - t0:6.0f} s  "
            + "  ".join(f"{k} {v:.4f}" for k, v in means.items())
        )
    model.eval()
    record = {
        "input_hw": list(input_hw),
        "map_hw": list(map_hw),
        "epochs": epochs,
        "batch": batch,
        "lr": lr,
        "width": width,
        "seed": seed,
        "bf16": bf16,
        "sigma_hm": sigma,
        "eps_c": eps,
        "train_crops": n,
        "init": str(init) if init else None,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "threads": torch.get_num_threads(),
        "final_losses": history[-1] if history else {},
    }
    return model, record


# --- export and cards ----------------------------------------------------------------------------------


def export_model(model: SimPoseNet, input_hw: tuple[int, int], path: Path, flip: bool = False) -> Path:
    """ONNX with one output per head, dynamic batch, checked against torch; ``flip`` exports the
    :class:`FlipAveraged` wrapper (flip test-time augmentation in the graph)."""
    from perception_pkg.training.export import export_onnx, parity_check

    model = model.float().to(memory_format=torch.contiguous_format).eval()
    if flip:
        model = FlipAveraged(model, [int(i) for i in flip_permutation()]).eval()
    example = torch.zeros(2, 3, *input_hw)
    export_onnx(model, example, path, ["input"], list(OUTPUT_NAMES), dynamic_batch=True, dynamo=False)
    x = np.random.default_rng(0).normal(size=(3, 3, *input_hw)).astype(np.float32)
    report = parity_check(model, path, {"input": x}, tolerance=1e-4)
    if not report.passed:
        raise RuntimeError(str(report))
    return path


# --- entry ---------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Train, evaluate on held-out seeds, export and write cards; returns a process exit code."""
    from perception_pkg.training.pose_metrics import evaluate_model

    torch.set_num_threads(args.threads)
    log = (lambda *a, **k: None) if args.quiet else print
    input_hw = tuple(args.input)
    sizes = (input_hw,)
    t0 = time.perf_counter()
    use_cache = not args.no_cache
    extra = {} if input_hw in train_spec(1).sizes else {"sizes": sizes}
    data = get_train_set(args.train_scenes, 100, args.cache_dir, not args.quiet, use_cache, **extra)
    if args.max_crops:
        data = data.subset(slice(0, args.max_crops))
    log(f"training crops: {len(data)} ({time.perf_counter() - t0:.0f} s to load/render)")
    bf16 = args.bf16 == "on" or (args.bf16 == "auto" and input_hw[0] >= 128)
    model, record = train(
        data, input_hw, args.epochs, args.batch, args.lr, args.width, args.seed, bf16,
        args.sigma_hm, args.eps_c, log, args.init,
    )  # fmt: skip
    record["train_scene_seeds"] = f"0..{args.train_scenes - 1}"
    record["command"] = "python -m perception_pkg.training.pose_train " + " ".join(sys.argv[1:])
    stem = args.name or f"model_{input_hw[0]}x{input_hw[1]}"
    if args.out:
        # export before the (long) evaluation, so a failure there cannot lose the trained weights
        out: Path = args.out
        out.mkdir(parents=True, exist_ok=True)
        onnx_path = export_model(model, input_hw, out / f"{stem}.onnx")
        export_model(model, input_hw, out / f"{stem}_flip.onnx", flip=True)
        torch.save(model.float().state_dict(), out / f"{stem}.pt")
        log(f"exported {onnx_path} and {stem}_flip.onnx ({onnx_path.stat().st_size / 1e6:.2f} MB each)")
    results: dict[str, Any] = {}
    if not args.no_eval:
        ho_spec = heldout_spec(args.heldout_scenes)
        if input_hw not in ho_spec.sizes:
            ho_spec = heldout_spec(args.heldout_scenes, sizes=sizes)
        held = get_set(ho_spec, args.cache_dir, progress=not args.quiet, use_cache=use_cache)
        record["heldout_scene_seeds"] = f"{ho_spec.seeds[0]}..{ho_spec.seeds[-1]}"
        record["heldout_people"] = len(held)
        results = evaluate_model(model, held, input_hw, record["eps_c"])
        for variant, res in results.items():
            log(f"  {variant:14s} " + "  ".join(f"{k} {v:.4f}" for k, v in res.items()))
    if args.out:
        (out / f"{stem}.train.json").write_text(json.dumps({"record": record, "heldout": results}, indent=1))
        write_cards(out, stem, input_hw, record, results, args.default_card)
    log(json.dumps(record["final_losses"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perception_pkg.training.pose_train", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
