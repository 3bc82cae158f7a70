"""Completion node work per scan with 1 and 10 cars, extraction included, p50/p99; per object too.

One scan = what the node does after a scan and its boxes are paired: PointCloud2 -> xyz (``decode``),
Detection3DArray -> boxes, the points in each box (``extract``), the PCN object frame and resampling,
one batched engine call (``infer``), the inverse transform, the output PointCloud2, all through the same
``CompletionPipeline.run`` the node and replay use (markers, built only for a subscriber, are left out;
``--markers`` adds them). The scan is the sample bag's first frame (~125k points); its ground-truth
LiDAR boxes give the cars (the nearest 1 or 10). Baselines in the same run: the same objects sent
through the engine one at a time (10 calls of batch 1), and torch eager on the same batch when the card
has a torch section. Goal (issue 14): 10 objects p50 <= 20 ms batched.

    python benchmarks/bench_completion.py [--reps 50] [--threads 2] [--card CARD] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np


def _pct(ts: list[float]) -> dict[str, float]:
    a = np.asarray(ts) * 1e3
    return {"p50_ms": float(np.median(a)), "p99_ms": float(np.percentile(a, 99)), "n": len(a)}


def _first_frame() -> tuple[Any, Any, Any]:
    from perception_pkg.bag import get_typestore, open_bag
    from perception_pkg.msgs import stamp_to_ns
    from perception_pkg.sim.generate import ensure_sample_bag

    want = ("/lidar/points", "/ground_truth/detections_3d_lidar")
    frames: dict[int, dict[str, Any]] = {}
    store = get_typestore()
    with open_bag(ensure_sample_bag(), store) as reader:
        for m in reader.messages():
            if m.topic in want:
                msg = reader.deserialize(m)
                frames.setdefault(stamp_to_ns(msg.header), {})[m.topic] = msg
                done = [v for v in frames.values() if len(v) == 2]
                if done:
                    return done[0][want[0]], done[0][want[1]], store
    raise RuntimeError("the sample bag has no scan with its boxes")


def _nearest_cars(types: Any, det: Any, n: int) -> Any:
    cars = [d for d in det.detections if d.results[0].hypothesis.class_id == "car"]
    cars.sort(key=lambda d: np.hypot(d.bbox.center.position.x, d.bbox.center.position.y))
    return types.Detection3DArray(header=det.header, detections=cars[:n])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--card", default="")
    p.add_argument("--markers", action="store_true")
    p.add_argument("--json", default="")
    args = p.parse_args()

    from perception_pkg.completion import Completer, resolve_card
    from perception_pkg.msgs import MessageFactory
    from perception_pkg.pipelines.base import Job
    from perception_pkg.pipelines.completion import CompletionSettings, create

    cloud, det, store = _first_frame()
    types = MessageFactory.rosbags(store)
    card = resolve_card(args.card or None)
    completer = Completer.from_card(card, "onnxruntime", args.threads)
    settings = CompletionSettings(boxes_topic="/ground_truth/detections_3d_lidar")
    pipe = create(settings, types, live=True, completer=completer)
    wanted = (lambda k: True) if args.markers else (lambda k: k != "markers")
    results: dict[str, Any] = {"card": str(card), "engine": completer.describe(), "points": int(cloud.width)}
    for n in (1, 10):
        boxes = _nearest_cars(types, det, n)
        k = len(boxes.detections)
        job = Job(cloud, boxes)
        for _ in range(3):
            pipe.run(job, wanted)
        scan, stages = [], {}
        for _ in range(args.reps):
            t0 = time.perf_counter()
            pipe.run(job, wanted)
            scan.append(time.perf_counter() - t0)
            for key, v in pipe.last_timings.items():
                stages.setdefault(key, []).append(v)
        row = {
            "objects": k,
            "scan": _pct(scan),
            "per_object_p50_ms": float(np.median(scan)) * 1e3 / max(k, 1),
        }
        row["stages_p50_ms"] = {key: float(np.median(v)) * 1e3 for key, v in stages.items()}
        # baseline: the same objects one engine call each
        x = completer.inputs([np.zeros((5, 3), np.float32)] * k) + np.random.default_rng(0).normal(
            0, 0.1, (k, completer.n_in, 3)
        ).astype(np.float32)
        name = completer.input_name
        one_by_one, batched = [], []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            completer.engine.infer({name: x})
            batched.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for i in range(k):
                completer.engine.infer({name: x[i : i + 1]})
            one_by_one.append(time.perf_counter() - t0)
        row["infer_batched"] = _pct(batched)
        row["infer_one_by_one"] = _pct(one_by_one)
        row["one_by_one_over_batched_p50"] = float(np.median(one_by_one) / np.median(batched))
        try:
            import torch

            from perception_pkg.engines.torch_backend import module_from_card

            torch.set_num_threads(args.threads)
            module = module_from_card(completer.card).eval()
            xt = torch.from_numpy(x)
            with torch.inference_mode():
                module(xt)
                ts = []
                for _ in range(max(5, args.reps // 5)):
                    t0 = time.perf_counter()
                    module(xt)
                    ts.append(time.perf_counter() - t0)
            row["torch_eager_batched"] = _pct(ts)
            row["torch_over_ort_p50"] = float(np.median(ts) / np.median(batched))
        except Exception as exc:  # no torch, or no torch section in the card
            row["torch_eager_batched"] = f"not measured: {type(exc).__name__}: {exc}"
        results[f"{n}_objects"] = row
        s = row["scan"]
        print(
            f"{k:2d} objects: scan p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, "
            f"{row['per_object_p50_ms']:.2f} ms/object; stages p50 "
            + ", ".join(f"{a}={b:.2f}" for a, b in row["stages_p50_ms"].items())
            + f"; engine batched {row['infer_batched']['p50_ms']:.2f} ms vs one by one "
            f"{row['infer_one_by_one']['p50_ms']:.2f} ms ({row['one_by_one_over_batched_p50']:.2f}x)"
            + (f"; torch eager / ORT {row['torch_over_ort_p50']:.2f}x" if "torch_over_ort_p50" in row else "")
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
