"""Latency of the recurrent bottom-up pose card at 640x480 with 1 and 5 people: per frame and per
person iteration (two step-graph calls), on this CPU.

A frame with N people costs the feature graph once and N + 1 person iterations (the last one is where
P_t < omega says stop). Two ways to get N:

- ``forced``: the card's decoder with ``omega = 0`` and ``max_people = N + 1``, so exactly N + 1
  iterations run on every frame whatever the model thinks (the cost model, independent of accuracy);
- ``sim``: held-out simulator frames whose target count is N, decoded with the card as shipped (the model
  decides when to stop; ``iterations`` says how many it ran).

Stages are the estimator's (``preprocess``, ``inference`` = feature graph, ``decode`` = the host loop
and the maps -> keypoints step); onnxruntime with ``--threads`` intra-op threads for both graphs.

    python benchmarks/bench_pose_rnn.py [--frames 30] [--threads 1] [--card CARD] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np


def _stats(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1e3
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p90_ms": float(np.percentile(a, 90)),
        "mean_ms": float(a.mean()),
    }


def _estimator(card: Any, threads: int, **params: Any) -> Any:
    from perception_pkg.pose import PoseEstimator

    dec = dataclasses.replace(card.decoder, params={**card.decoder.params, "threads": threads, **params})
    return PoseEstimator(dataclasses.replace(card, decoder=dec), backend="onnxruntime", threads=threads)


def _run(est: Any, images: list[np.ndarray], frames: int) -> dict[str, Any]:
    est(images[0])  # warm-up: loads the step graph
    total, stages, iters, steps = [], {"preprocess": [], "inference": [], "decode": []}, [], []
    for i in range(frames):
        t0 = time.perf_counter()
        res = est(images[i % len(images)])
        total.append(time.perf_counter() - t0)
        for k in stages:
            stages[k].append(res.timings[k])
        loop = est.runner.decoder.last
        iters.append(len(loop.all_probs))
        steps.append(loop.steps)
    per_iter = [d / max(n, 1) for d, n in zip(stages["decode"], iters, strict=True)]
    return {
        "frame": _stats(total),
        **{k: _stats(v) for k, v in stages.items()},
        "per_iteration": _stats(per_iter),
        "iterations_mean": float(np.mean(iters)),
        "steps_mean": float(np.mean(steps)),
    }


def _sim_frames(dataset: Path, n: int, limit: int = 8) -> list[np.ndarray]:
    import cv2

    from perception_pkg.training.pose_rnn_eval import target_count

    gt = json.loads((dataset / "annotations" / "keypoints.json").read_text())
    by: dict[int, list] = {}
    for a in gt["annotations"]:
        by.setdefault(a["image_id"], []).append(a)
    imgs = [
        cv2.imread(str(dataset / i["file_name"]))
        for i in gt["images"]
        if target_count(by.get(i["id"], [])) == n
    ]
    return imgs[:limit]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--card", type=Path, default=None, help="default models/sim_pose_rnn/card.yaml")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sim", type=Path, default=Path("out/heldout_pose_crowded"),
                    help="dataset folder for the 'sim' rows (skipped when absent)")  # fmt: skip
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    from perception_pkg.cards import load_card
    from perception_pkg.paths import models_dir

    card = load_card(a.card or models_dir() / "sim_pose_rnn" / "card.yaml")
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(3)]
    out: dict[str, Any] = {"card": card.name, "threads": a.threads, "rows": {}}
    for n in (1, 5):
        out["rows"][f"forced_{n}"] = _run(
            _estimator(card, a.threads, omega=0.0, max_people=n + 1), noise, a.frames
        )
        if (a.sim / "annotations" / "keypoints.json").is_file():
            imgs = _sim_frames(a.sim, n)
            if imgs:
                out["rows"][f"sim_{n}"] = _run(_estimator(card, a.threads), imgs, a.frames)
    print(f"{card.name}, onnxruntime {a.threads} thread(s), 640x480")
    print("row        frame p50  p90   features  loop   per iteration  iterations")
    for k, r in out["rows"].items():
        print(
            f"{k:10s} {r['frame']['p50_ms']:7.1f} {r['frame']['p90_ms']:6.1f} "
            f"{r['inference']['p50_ms']:8.1f} "
            f"{r['decode']['p50_ms']:6.1f} {r['per_iteration']['p50_ms']:10.1f} {r['iterations_mean']:12.1f}"
        )
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
