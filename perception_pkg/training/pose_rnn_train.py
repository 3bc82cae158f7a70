"""Train the recurrent bottom-up pose model (``perception train pose-rnn``), export it, write its card.

    perception train pose-rnn --train-scenes 240 --minutes 40 --out models/sim_pose_rnn

Only the association part learns (the frozen detector features are cached by :mod:`.pose_rnn_data`):
encoder + ConvLSTM step (:mod:`.pose_rnn_net`), Adam, batch of frames, the paper's losses weighted
equally. Reproducible on one CPU thread: the scene seeds fix the data, ``--seed`` the initialisation,
the initial feedback maps and the batch order. ``--minutes`` bounds the wall clock (training stops after
the batch that crosses it, and says so in training.json), so a run fits a fixed budget.

Export (see ``decoders/pose/rnn_association.py`` for why a step graph and a host loop):
``features.onnx`` (image -> f4, f8; the card's model) and ``step.onnx`` (state in, state out).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from perception_pkg.training.pose_rnn_data import (
    FEATURE_STRIDE,
    MAX_TARGETS,
    NET_HW,
    frozen_backbone,
    get_train_split,
)
from perception_pkg.training.pose_rnn_net import (
    FEATURE_OUTPUTS,
    OMEGA,
    STEP_INPUTS,
    STEP_OUTPUTS,
    FeatureEncoder,
    RnnFeatures,
    RnnStep,
    gaussian_maps,
    rnn_loss,
    unroll,
)

MAP_HW = (NET_HW[0] // FEATURE_STRIDE, NET_HW[1] // FEATURE_STRIDE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train-scenes", type=int, default=240, help="training scene seeds 0..n-1")
    parser.add_argument("--epochs", type=int, default=20, help="upper bound; --minutes usually ends first")
    parser.add_argument("--minutes", type=float, default=40.0, help="wall-clock budget of the training loop")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--sigma", type=float, default=1.0, help="target Gaussian sigma in heatmap cells")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", type=Path, default=None, help="continue from these weights (.pt)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the convolutions")
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for model.pt, ONNX graphs, training.json"
    )
    parser.add_argument("--quiet", action="store_true")


class PoseRnn(torch.nn.Module):
    """The trainable part: encoder + step (saved together in model.pt)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = FeatureEncoder()
        self.step = RnnStep()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export(model: PoseRnn, out: Path) -> dict[str, str]:
    """features.onnx (1x3x288x384 -> f4, f8) and step.onnx; returns their sha256."""
    model.eval()
    feats = RnnFeatures(frozen_backbone(), model.encoder).eval()
    x = torch.zeros(1, 3, *NET_HW)
    torch.onnx.export(
        feats, (x,), out / "features.onnx", input_names=["input"], output_names=list(FEATURE_OUTPUTS),
        opset_version=17, dynamo=False,
    )  # fmt: skip
    with torch.no_grad():
        f4, f8 = feats(x)
    hm = torch.zeros(1, model.step.joints, *f4.shape[2:])
    args = (f4, f8, hm, *model.step.zero_state(f8))
    torch.onnx.export(
        model.step, args, out / "step.onnx", input_names=list(STEP_INPUTS), output_names=list(STEP_OUTPUTS),
        opset_version=17, dynamo=False,
    )  # fmt: skip
    return {"features.onnx": sha256(out / "features.onnx"), "step.onnx": sha256(out / "step.onnx")}


def write_card(folder: Path, accuracy: dict[str, Any] | None = None) -> Path:
    """``card.yaml`` for the exports in ``folder`` (hashes and provenance from its training.json)."""
    import yaml

    from perception_pkg.decoders.pose.rnn_association import OMEGA as DECODER_OMEGA
    from perception_pkg.pose.coco17 import KEYPOINT_NAMES

    rec = json.loads((folder / "training.json").read_text())
    hashes = rec["sha256"]
    h4, w4 = MAP_HW
    card = {
        "name": "sim_pose_rnn",
        "task": "pose",
        "description": "bottom_up pose: recurrent part-detection association (ConvLSTM, one person per "
        "iteration, learned stop); no person boxes needed",
        "model": "features.onnx",
        "sha256": hashes["features.onnx"],
        "inputs": [{"name": "input", "shape": [1, 3, *NET_HW], "color": "RGB", "scale": "1/255",
                    "resize": {"policy": "letterbox", "pad_value": 0, "anchor": "center"}}],
        "outputs": [
            {"name": "f4", "shape": [1, 16, h4, w4]},
            {"name": "f8", "shape": [1, 24, h4 // 2, w4 // 2]},
        ],
        "decoder": {
            "type": "rnn_association",
            "outputs": {"f4": "f4", "f8": "f8"},
            "params": {"step_model": "step.onnx", "step_sha256": hashes["step.onnx"],
                       "stride": FEATURE_STRIDE,
                       "omega": round(DECODER_OMEGA, 6), "max_people": MAX_TARGETS + 1, "refine_steps": 2,
                       "init_value": 0.05, "joint_threshold": 0.015, "refine": "log_parabola",
                       "num_keypoints": 17, "threads": 1},
        },
        "classes": ["person"],
        "keypoints": list(KEYPOINT_NAMES),
        "precision": {"preferred": "fp32", "supported": ["fp32"]},
        "provenance": {
            "data": f"simulator scenes, seeds 0..{rec['train_scenes'] - 1} (every 2nd crowded), "
            "5 frames each "
            f"0.4 s apart: {rec['frames']} frames, {rec['target_people']} target people (modal box >= 24 px, "
            ">= 6 labelled keypoints, the 12 largest per frame); frozen sim_detector features",
            "training": f"`{rec['command']}`: {rec['train_seconds'] / 60:.1f} min on one CPU thread "
            f"({rec['batches']} batches of {rec['batch']}, stopped by {rec['stopped_by']}), after "
            f"{rec['data_seconds'] / 60:.1f} min of rendering + feature caching; losses in training.json",
            "accuracy": accuracy or {},
            "notes": "host loop over step.onnx (state in / state out), 2 steps per person; omega = "
            "sigmoid(-1); max_people 13 = the most person iterations training ran (12 targets + the stop)",
            "license": "Apache-2.0 (ours)",
        },
    }  # fmt: skip
    path = folder / "card.yaml"
    path.write_text(yaml.safe_dump(card, sort_keys=False, width=110))
    return path


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    data = get_train_split(args.train_scenes, progress=not args.quiet)
    t_data = time.perf_counter() - t0
    keep = np.arange(len(data))  # frames with nobody stay: they teach stopping at the first iteration
    say = (lambda *a: None) if args.quiet else print
    say(f"{len(keep)} frames, {int(data.count.sum())} target people, data {t_data:.0f} s")
    model = PoseRnn()
    if args.init is not None:
        model.load_state_dict(torch.load(args.init, map_location="cpu"))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    args.out.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, Any]] = []
    t_train = time.perf_counter()
    budget = args.minutes * 60.0
    batches = 0
    stopped_by = "epochs"
    for epoch in range(args.epochs):
        order = rng.permutation(keep)
        sums = np.zeros(4)
        n = 0
        for lo in range(0, len(order), args.batch):
            idx = np.sort(order[lo : lo + args.batch])
            feats = torch.from_numpy(data.features[idx].astype(np.float32))
            counts = [int(c) for c in data.count[idx]]
            targets = [torch.from_numpy(gaussian_maps(data.people[i], c, MAP_HW, FEATURE_STRIDE, args.sigma))
                       for i, c in zip(idx, counts, strict=True)]  # fmt: skip
            model.train()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                f4, f8 = model.encoder(feats)
                maps, logits = unroll(model.step, f4, f8, [c + 1 for c in counts], MAX_TARGETS + 1, gen)
            hm_loss, stop_loss, zhats = rnn_loss(maps, logits, targets, counts)
            loss = hm_loss + stop_loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sums += [hm_loss.item(), stop_loss.item(), np.mean(np.abs(np.subtract(zhats, counts))), len(maps)]
            n += 1
            batches += 1
            if not args.quiet and batches % 25 == 0:
                m = sums / n
                el = time.perf_counter() - t_train
                say(f"  epoch {epoch} batch {batches}: hm {m[0]:.3f} stop {m[1]:.3f} count MAE {m[2]:.2f} "
                    f"iters {m[3]:.1f} ({el:.0f} s)")  # fmt: skip
                sys.stdout.flush()
            if batches % 200 == 0:
                torch.save(model.state_dict(), args.out / "model.pt")
            if time.perf_counter() - t_train > budget:
                stopped_by = "minutes"
                break
        m = sums / max(n, 1)
        history.append({"epoch": epoch, "batches": n, "hm_loss": m[0], "stop_loss": m[1], "count_mae": m[2],
                        "people_iterations": m[3], "seconds": time.perf_counter() - t_train})  # fmt: skip
        say(f"epoch {epoch}: {history[-1]}")
        if stopped_by == "minutes":
            break
    train_s = time.perf_counter() - t_train
    torch.save(model.state_dict(), args.out / "model.pt")
    hashes = export(model, args.out)
    record = {
        "command": "perception train pose-rnn "
        + " ".join(sys.argv[3:] if sys.argv[1:2] == ["train"] else sys.argv[1:]),
        "train_scenes": args.train_scenes, "frames": len(keep), "target_people": int(data.count.sum()),
        "seed": args.seed, "batch": args.batch, "lr": args.lr, "sigma": args.sigma, "bf16": args.bf16,
        "omega": OMEGA, "threads": args.threads, "data_seconds": t_data, "train_seconds": train_s,
        "stopped_by": stopped_by, "batches": batches, "history": history, "sha256": hashes,
        "init": str(args.init) if args.init else None,
    }  # fmt: skip
    (args.out / "training.json").write_text(json.dumps(record, indent=1))
    write_card(args.out)
    say(f"trained {train_s:.0f} s ({stopped_by}), exported to {args.out}")
    return 0 if math.isfinite(history[-1]["hm_loss"]) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
