"""``perception train completion``: SoftPoolNet on the simulator's cars, seeded, exported with a card.

Recipe (defaults): train scenes 1000-1079, validation scenes 2000-2009 (for the choice between runs
only; the reported figures come from ``perception eval completion`` on scenes 3000+, never seen here),
4 frames per scene 15 time steps apart, cars with >= ``min_points`` points in their box. One CPU thread
(``torch.set_num_threads(1)``), Adam 1e-3 with warm-up and cosine decay, batch 16, a random mirror
across the long axis (y -> -y on input and target alike: the cars are left-right symmetric), a fresh
1,024-point resampling of each partial at every draw, and with ``--mixup`` PointMixup on half of each
batch (``completion_mixup``; lambda ~ Beta(0.4, 0.4)).

Loss = CD(fine) + CD(coarse) + 0.05 L_inter + 0.05 L_intra + 0.1 L_boundary + 0.01 L_preserve
(``completion_losses``; weights ours: the paper gives none). Writes OUT/model.pt, OUT/model.onnx
(dynamic batch, static point counts), OUT/card.yaml and OUT/training.json (losses, validation curve,
timings, parity of ONNX Runtime against torch).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from perception_pkg.completion.sampling import resample
from perception_pkg.evaluation.completion_data import Pairs, build_pairs, ensure_split, parse_seeds
from perception_pkg.metrics.completion import chamfer_pcn
from perception_pkg.pipelines.completion import CompletionSettings
from perception_pkg.training import completion_losses as L
from perception_pkg.training.completion_mixup import build_pool
from perception_pkg.training.completion_net import ExportWrapper, SoftPoolConfig, SoftPoolNet

log = logging.getLogger("perception_pkg.training.completion")

WEIGHTS = {"coarse": 1.0, "fine": 1.0, "inter": 0.05, "intra": 0.05, "boundary": 0.1, "preserve": 0.01}
MAX_BATCH = 32


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("models/sim_completion"), help="output folder")
    p.add_argument("--cache", type=Path, default=Path("data/cache/completion"), help="rendered scenes, pairs")
    p.add_argument("--train-seeds", default="1000-1079", help="scene seeds for training, e.g. 1000-1079")
    p.add_argument("--val-seeds", default="2000-2009", help="scene seeds for validation")
    p.add_argument("--frames", type=int, default=4, help="frames per scene")
    p.add_argument("--frame-step", type=int, default=15, help="10 Hz steps between frames")
    p.add_argument("--steps", type=int, default=2400)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mixup", action=argparse.BooleanOptionalAction, default=True, help="PointMixup")
    p.add_argument("--mixup-pairs", type=int, default=1024, help="pre-assigned PointMixup pairs")
    p.add_argument("--mixup-share", type=float, default=0.5, help="share of each batch that is mixed")
    p.add_argument("--alpha", type=float, default=0.4, help="PointMixup lambda ~ Beta(alpha, alpha)")
    p.add_argument("--val-every", type=int, default=300)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (the recipe: 1)")
    p.add_argument("--no-export", action="store_true", help="skip ONNX export and card")
    p.add_argument("--init", type=Path, default=None, help="start from these weights (a model.pt)")
    p.add_argument(
        "--previous", type=Path, default=None,
        help="training.json of the stage --init came from: its record is kept in this one's 'stages'",
    )  # fmt: skip


def _batch(
    pairs: Pairs, rows: np.ndarray, rng: np.random.Generator, n_in: int
) -> tuple[np.ndarray, np.ndarray]:
    x = np.stack([resample(pairs.partial(int(k)), n_in, rng) for k in rows])
    g = pairs.gt[rows].copy()
    return x, g


def validate(net: SoftPoolNet, pairs: Pairs, limit: int = 256) -> float:
    """Mean CD_PCN (fine vs the 2,048 GT samples, object frame) on the first ``limit`` pairs."""
    net.eval()
    n = min(limit, len(pairs))
    cds = []
    with torch.no_grad():
        for s in range(0, n, MAX_BATCH):
            out = net(torch.from_numpy(pairs.inputs[s : min(n, s + MAX_BATCH)]))["fine"].numpy()
            cds += [chamfer_pcn(out[i], pairs.gt[s + i]) for i in range(len(out))]
    net.train()
    return float(np.mean(cds))


def train(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    s = CompletionSettings()
    t0 = time.perf_counter()
    scenes = args.cache / "scenes"
    train_dirs = ensure_split(scenes, parse_seeds(args.train_seeds), args.frames, args.frame_step)
    val_dirs = ensure_split(scenes, parse_seeds(args.val_seeds), args.frames, args.frame_step)
    t_render = time.perf_counter() - t0
    extract = {"grow": s.box_grow, "ground_margin": s.ground_margin, "min_points": s.min_points}
    cfg = SoftPoolConfig()
    trainset = build_pairs(train_dirs, n_in=cfg.n_in, cache=args.cache, **extract)
    valset = build_pairs(val_dirs, n_in=cfg.n_in, cache=args.cache, **extract)
    t_pairs = time.perf_counter() - t0 - t_render
    log.info("train %d pairs (%d skipped), val %d", len(trainset), trainset.skipped, len(valset))
    pool = None
    t1 = time.perf_counter()
    if args.mixup:
        partials = [trainset.partial(k) for k in range(len(trainset))]
        pool = build_pool(partials, trainset.gt, args.mixup_pairs, rng)
    t_pool = time.perf_counter() - t1
    net = SoftPoolNet(cfg)
    if args.init is not None:
        net.load_state_dict(torch.load(args.init, map_location="cpu", weights_only=True))
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    warm = min(100, args.steps // 10)

    def lr_at(step: int) -> float:
        if step < warm:
            return args.lr * (step + 1) / warm
        t = (step - warm) / max(1, args.steps - warm)
        return 1e-5 + 0.5 * (args.lr - 1e-5) * (1 + np.cos(np.pi * t))

    history: list[dict[str, float]] = []
    val_curve: list[tuple[int, float]] = []
    n_mix = round(args.batch * args.mixup_share) if pool is not None else 0
    t_train0 = time.perf_counter()
    running: dict[str, float] = {}
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        rows = rng.choice(len(trainset), args.batch - n_mix, replace=True)
        x, g = _batch(trainset, rows, rng, cfg.n_in)
        if n_mix:
            mixed = [
                pool.draw(int(k), float(rng.beta(args.alpha, args.alpha)), cfg.n_in, cfg.fine)
                for k in rng.choice(len(pool), n_mix)
            ]
            x = np.concatenate([x, np.stack([m[0] for m in mixed])])
            g = np.concatenate([g, np.stack([m[1] for m in mixed])])
        flip = rng.random(len(x)) < 0.5
        x[flip, :, 1] *= -1
        g[flip, :, 1] *= -1
        xt, gt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(g.astype(np.float32))
        out = net(xt)
        terms = {
            "fine": L.chamfer(out["fine"], gt),
            "coarse": L.chamfer(out["coarse"], gt),
            "inter": L.inter_region(out["activations"]),
            "intra": L.intra_region(out["activations"]),
            "boundary": L.boundary(out["coarse"], out["pooled_act"]),
            "preserve": L.preserve(out["activations"], out["pooled_act"], gen, items=4),
        }
        loss = sum(WEIGHTS[k] * v for k, v in terms.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for k, v in terms.items():
            running[k] = running.get(k, 0.0) + float(v.detach())
        if (step + 1) % 50 == 0:
            row = {k: v / 50 for k, v in running.items()}
            row["step"] = step + 1
            row["s"] = time.perf_counter() - t_train0
            history.append(row)
            running = {}
            log.info(
                "step %d  fine %.4f coarse %.4f inter %.3f intra %.3f boundary %.4f preserve %.3f  %.0f s",
                step + 1, row["fine"], row["coarse"], row["inter"], row["intra"], row["boundary"],
                row["preserve"], row["s"],
            )  # fmt: skip
        if (step + 1) % args.val_every == 0 or step + 1 == args.steps:
            v = validate(net, valset)
            val_curve.append((step + 1, v))
            log.info("step %d  validation CD_PCN x1e3 %.2f", step + 1, v * 1e3)
    t_train = time.perf_counter() - t_train0
    return {
        "net": net,
        "valset": valset,
        "report": {
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"},
            "config": cfg.to_dict(),
            "extraction": extract,
            "loss_weights": WEIGHTS,
            "train_pairs": len(trainset),
            "train_skipped_few_points": trainset.skipped,
            "val_pairs": len(valset),
            "history": history,
            "validation_cd_pcn": val_curve,
            "seconds": {
                "render": t_render,
                "pairs": t_pairs,
                "mixup_pool": t_pool,
                "train": t_train,
                "total_cpu_training": t_pool + t_train,
            },
        },
    }


def export(net: SoftPoolNet, out: Path, valset: Pairs) -> dict[str, Any]:
    """ONNX (dynamic batch) + parity against torch on validation inputs."""
    from perception_pkg.training.export import export_onnx

    net.eval()
    onnx_path = export_onnx(
        ExportWrapper(net), torch.zeros(2, net.config.n_in, 3), out / "model.onnx", ["points"],
        ["coarse", "fine"], dynamic_batch=True, max_batch=MAX_BATCH, dynamo=False,
    )  # fmt: skip
    return parity(net, onnx_path, valset.inputs[:8])


def parity(net: SoftPoolNet, onnx_path: Path, inputs: np.ndarray) -> dict[str, Any]:
    """CD_PCN between ONNX Runtime's and torch's fine outputs, relative to the size of the torch output
    (its bounding-box diagonal), worst over ``inputs``; plus the max absolute difference."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    coarse_o, fine_o = sess.run(["coarse", "fine"], {"points": inputs.astype(np.float32)})
    with torch.no_grad():
        ref = net(torch.from_numpy(inputs.astype(np.float32)))
    fine_t = ref["fine"].numpy()
    rel = []
    for a, b in zip(fine_o, fine_t, strict=True):
        diag = float(np.linalg.norm(b.max(0) - b.min(0)))
        rel.append(chamfer_pcn(a, b) / diag)
    return {
        "cd_pcn_relative_worst": float(max(rel)),
        "max_abs_diff_fine": float(np.abs(fine_o - fine_t).max()),
        "max_abs_diff_coarse": float(np.abs(coarse_o - ref["coarse"].numpy()).max()),
        "samples": len(inputs),
    }


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    result = train(args)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    net, report = result["net"], result["report"]
    stages = []
    if args.previous is not None:
        prev = json.loads(Path(args.previous).read_text())
        stages = prev.get("stages") or [stage_record(prev)]
    report["stages"] = [*stages, stage_record(report)]
    torch.save(net.state_dict(), out / "model.pt")  # a plain state dict: what the torch backend loads
    if not args.no_export:
        report["parity"] = export(net, out, result["valset"])
        write_card(out, report)
    (out / "training.json").write_text(json.dumps(report, indent=1) + "\n")
    v = report["validation_cd_pcn"][-1][1]
    print(
        f"validation CD_PCN x1e3 {v * 1e3:.2f}; training "
        f"{report['seconds']['total_cpu_training']:.0f} s; {out}"
    )
    return 0


def command(a: dict[str, Any]) -> str:
    """The command line that reproduces a stage (its recorded arguments)."""
    cmd = (
        f"perception train completion --steps {a['steps']} --batch {a['batch']} --lr {a['lr']} "
        f"--seed {a['seed']} --train-seeds {a['train_seeds']} --val-seeds {a['val_seeds']} "
        f"--frames {a['frames']} --frame-step {a['frame_step']} {'--mixup' if a['mixup'] else '--no-mixup'}"
    )
    if a.get("init"):
        cmd += f" --init {a['init']}"
    return cmd


def stage_record(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "command": command(report["args"]),
        "seconds": report["seconds"]["total_cpu_training"],
        "validation_cd_pcn_x1e3": report["validation_cd_pcn"][-1][1] * 1e3,
    }


def card_dict(report: dict[str, Any], accuracy: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg = report["config"]
    coarse = cfg["regions"] * cfg["rows"]
    a = report["args"]
    stages = report.get("stages") or [stage_record(report)]
    secs = sum(s["seconds"] for s in stages)
    cmd = "; then ".join(f"{s['command']} ({s['seconds']:.0f} s)" for s in stages)
    return {
        "name": "sim_completion_softpoolnet",
        "task": "completion",
        "description": (
            f"SoftPoolNet (reduced: MLP {cfg['mlp']} + {cfg['regions']} regions, N_r {cfg['rows']}, "
            f"N_p {cfg['kernel']}) completing cars in the PCN object frame: {cfg['n_in']} points in, "
            f"{coarse} coarse + {cfg['fine']} fine out"
        ),
        "model": "model.onnx",
        "inputs": [
            {
                "name": "points",
                "kind": "tensor",
                "shape": ["batch", cfg["n_in"], 3],
                "dtype": "float32",
                "dynamic": {"batch": [1, 10, MAX_BATCH]},
            },
        ],
        "outputs": [
            {"name": "coarse", "shape": ["batch", coarse, 3]},
            {"name": "fine", "shape": ["batch", cfg["fine"], 3]},
        ],
        "decoder": {"type": "completion", "outputs": {"points": "fine", "coarse": "coarse"}},
        "classes": ["car"],
        "precision": {"preferred": "fp32", "supported": ["fp32", "fp16"]},
        "provenance": {
            "training": f"{cmd}; {secs:.0f} s in all on 1 CPU thread",
            "data": (
                f"perception_pkg simulator cars: {report['train_pairs']} partial/complete pairs from scenes "
                f"{a['train_seeds']} ({a['frames']} frames, step {a['frame_step']}); points cut with "
                f"box_grow {report['extraction']['grow']} m, ground_margin "
                f"{report['extraction']['ground_margin']} m, min_points {report['extraction']['min_points']}"
            ),
            "accuracy": accuracy or {},
            "source": "trained here (perception_pkg.training.completion_train)",
            "license": "same as the project",
            "notes": (
                "PCN object frame: centre on the box, rotate by -yaw, divide by the box length; "
                "host resamples each object to the input size (duplicates when sparse)"
            ),
        },
        "torch": {
            "factory": "sim_completion",
            "weights": "model.pt",
            "kwargs": {"config": cfg},
        },
    }


def write_card(out: Path, report: dict[str, Any], accuracy: dict[str, Any] | None = None) -> Path:
    import yaml

    path = out / "card.yaml"
    header = (
        "# Written by perception train completion; accuracy by perception eval completion --update-card.\n"
    )
    path.write_text(header + yaml.safe_dump(card_dict(report, accuracy), sort_keys=False, width=110))
    return path
