"""Weather restoration latency at 640x480 on this CPU (figures, not assertions).

Prints p50/p99 of: the shipped restorer alone (ModelRunner: preprocess + ONNX Runtime + decode), the
condition classifier, the classical baselines, the paper-width ForkGAN when its card is given, and the
weather -> detection chain (restore, then the shipped detector on the restored frame), all on the same
held-out simulator frames; the restorer's GMAC and GMAC/s against this machine's measured peak (a large
float32 matrix product through numpy on the same threads). Machine noise: quote the ratios.

    python benchmarks/bench_weather.py --dataset out/weather_report/3100000/dataset --reps 30
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np


def _times(fn, frames, reps: int) -> np.ndarray:
    fn(frames[0])
    out = []
    for i in range(reps):
        t0 = time.perf_counter()
        fn(frames[i % len(frames)])
        out.append(time.perf_counter() - t0)
    return np.array(out) * 1e3


def _peak_gmacs(threads: int) -> float:
    """Multiply-accumulates per second of a 1024^3 float32 matrix product (numpy/BLAS)."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    a @ a
    best = np.inf
    for _ in range(5):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return 1024**3 / best / 1e9


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", type=Path, required=True, help="a perception sim dataset with fog_s3 etc.")
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--paper-card", default=None, help="card of the paper-width variant (slow: few reps)")
    p.add_argument("--compare-card", default=None, help="another restorer card, timed in the same run")
    args = p.parse_args()

    from perception_pkg.detection import load_detector
    from perception_pkg.weather import BASELINES, ConditionClassifier, Restorer

    wanted = ("fog_s3", "rain_s3", "snow_s3", "night_s3")
    subsets = [d for d in wanted if (args.dataset / "images" / d).is_dir()]
    frames = [
        cv2.imread(str(f)) for s in subsets for f in sorted((args.dataset / "images" / s).glob("*.png"))[:4]
    ]
    restorer = Restorer(None, backend="onnxruntime", threads=args.threads)
    clf = ConditionClassifier(None, backend="onnxruntime", threads=args.threads)
    det = load_detector(None, "onnxruntime", threads=args.threads, lift_3d=False)
    rows = []

    def row(name: str, ms: np.ndarray) -> float:
        p50 = float(np.median(ms))
        rows.append((name, p50, float(np.percentile(ms, 99))))
        return p50

    r50 = row("restorer (ours), message-free: preprocess + ORT + decode", _times(restorer, frames, args.reps))
    infer = _times(lambda im: restorer.runner.infer(restorer.runner.preprocess(im)), frames, args.reps)
    i50 = row("restorer (ours), ORT inference only", infer)
    row("condition classifier (160x120)", _times(clf, frames, args.reps))
    d50 = row("detector alone", _times(lambda im: det(im), frames, args.reps))
    c50 = row("weather -> detection chain", _times(lambda im: det(restorer(im)), frames, args.reps))
    for name, fn in BASELINES.items():
        if name != "identity":
            row(f"baseline {name}", _times(fn, frames, max(args.reps // 3, 5)))
    if args.paper_card:
        paper = Restorer(args.paper_card, backend="onnxruntime", threads=args.threads)
        row("paper-width ForkGAN restorer", _times(paper, frames, 3))
    if args.compare_card:
        other = Restorer(args.compare_card, backend="onnxruntime", threads=args.threads)
        o50 = row(f"restorer {args.compare_card}", _times(other, frames, args.reps))
    from perception_pkg.training.weather_net import ForkConfig, restorer_cost  # needs torch
    from perception_pkg.training.weather_train import DEPLOY_TRUNK_SCALE

    # the shipped export's trunk runs at 1/DEPLOY_TRUNK_SCALE (weather_net.DeployedRestorer)
    gmac = restorer_cost(ForkConfig(), (480, 640), DEPLOY_TRUNK_SCALE)["gmac"]
    peak = _peak_gmacs(args.threads)
    print(f"{len(frames)} frames ({', '.join(subsets)}), {args.reps} reps, {args.threads} thread(s)\n")
    print("| stage | p50 ms | p99 ms |\n|---|---|---|")
    for name, a, b in rows:
        print(f"| {name} | {a:.1f} | {b:.1f} |")
    print(
        f"\nrestorer {gmac:.2f} GMAC at 640x480: {gmac / (i50 / 1e3):.1f} GMAC/s in ORT, "
        f"{100 * gmac / (i50 / 1e3) / peak:.0f}% of this machine's measured {peak:.1f} GMAC/s "
        "(numpy sgemm, BLAS default threads)"
    )
    print(
        f"chain / detector alone: {c50 / d50:.2f}x; restorer / detector alone: {r50 / d50:.2f}x; goals: "
        f"restorer p50 <= 15 ms ({r50:.1f}), chain <= 33 ms"
    )
    if args.compare_card:
        print(f"{args.compare_card} / ours p50: {o50 / r50:.2f}x (same run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
