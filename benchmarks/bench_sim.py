"""Simulator throughput: frames per second for image + 64-beam LiDAR + all ground truth, per stage.

Stages of ``Renderer.render`` (see sim/render.py): build (movers' meshes + BVH input; the static
geometry is rebuilt every 50 m of travel and lands in the frame that triggers it), camera (ray cast
of every pixel into both scenes), shade (texture, Lambert, sun shadows by an occlusion test), lidar
(64 x azimuth beams, noise, intensity), gt (boxes, keypoints and visibility, per-object LiDAR
indices). Not in the frame rate, measured separately: complete-shape sampling (2,048 + 16,384
points per labelled object; cached for rigid shapes, so it only recurs for walking people) and each
weather degradation at severity 3. A baseline in the same run: the same frames without shadows.

    python benchmarks/bench_sim.py [--frames 30] [--seed 0] [--width 640 --height 480]
                                   [--azimuth-steps 2000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from perception_pkg.sim import WEATHER_KINDS, Renderer, SceneConfig, degrade_frame, generate_scene

STAGES = ("build", "camera", "shade", "lidar", "gt")


def _stats(ms: np.ndarray) -> dict[str, float]:
    return {
        "median_ms": float(np.median(ms)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def run(args: argparse.Namespace) -> dict:
    config = SceneConfig.with_sensors(
        width=args.width,
        height=args.height,
        azimuth_steps=args.azimuth_steps,
        frames=args.frames + args.warmup,
    )
    out: dict = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "config": vars(args),
    }
    frames = []  # the shadowed pass's frames, reused to time the degradations
    for label, shadows in (("shadows", True), ("no_shadows", False)):
        scene = generate_scene(args.seed, config)
        renderer = Renderer(scene)
        for i in range(args.warmup):  # imports, first BVH, static geometry
            renderer.render(i, shadows=shadows)
        per_stage = {s: [] for s in STAGES}
        totals, surface = [], []
        points, people, objects = [], [], []
        for i in range(args.warmup, args.warmup + args.frames):
            t0 = time.perf_counter()
            frame = renderer.render(i, shadows=shadows)
            totals.append(time.perf_counter() - t0)
            for s in STAGES:
                per_stage[s].append(frame.timings[s])
            if shadows:
                t0 = time.perf_counter()
                for o in frame.objects:
                    if o.num_lidar_points >= 5:
                        for n in (2048, 16384):
                            renderer.complete_points(o.oid, frame.t, n)
                surface.append(time.perf_counter() - t0)
                frames.append(frame)
            points.append(len(frame.points))
            people.append(sum(o.keypoints is not None and o.visible_pixels >= 20 for o in frame.objects))
            objects.append(len(frame.objects))
        total_ms = np.array(totals) * 1e3
        res = {
            "fps": float(1e3 / np.median(total_ms)),
            "frame": _stats(total_ms),
            "stages": {s: _stats(np.array(v) * 1e3) for s, v in per_stage.items()},
            "lidar_points_median": float(np.median(points)),
            "people_in_image_median": float(np.median(people)),
            "labelled_objects_median": float(np.median(objects)),
        }
        if surface:
            res["complete_shapes"] = _stats(np.array(surface) * 1e3)
        out[label] = res
    degr: dict[str, np.ndarray] = {}
    for kind in WEATHER_KINDS:
        ms = []
        for frame in frames[: args.degrade_frames]:
            t0 = time.perf_counter()
            degrade_frame(scene, frame, kind, 3)
            ms.append(time.perf_counter() - t0)
        degr[kind] = np.array(ms) * 1e3
    out["degradations"] = {k: _stats(v) for k, v in degr.items()}
    out["degradations_all_kinds_median_ms"] = float(sum(np.median(v) for v in degr.values()))
    return out


def report(res: dict) -> None:
    cfg = res["config"]
    print(
        f"simulator, seed {cfg['seed']}, {cfg['frames']} frames ({cfg['warmup']} warm-up) at "
        f"{cfg['width']}x{cfg['height']}, 64 beams x {cfg['azimuth_steps']} azimuth steps, "
        f"{res['machine']['cpus']} CPUs"
    )
    for label in ("shadows", "no_shadows"):
        r = res[label]
        f = r["frame"]
        print(
            f"\n[{label}] {r['fps']:.1f} frames/s (median {f['median_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms)"
        )
        print(
            f"  per frame: {r['lidar_points_median']:.0f} LiDAR points, "
            f"{r['people_in_image_median']:.0f} people in the image, "
            f"{r['labelled_objects_median']:.0f} labelled objects"
        )
        print(f"  {'stage':<16}{'median ms':>10}{'p99 ms':>10}")
        for s, st in r["stages"].items():
            print(f"  {s:<16}{st['median_ms']:>10.1f}{st['p99_ms']:>10.1f}")
        if "complete_shapes" in r:
            st = r["complete_shapes"]
            name = "complete shapes"
            print(f"  {name:<16}{st['median_ms']:>10.1f}{st['p99_ms']:>10.1f}   (not in the frame rate)")
    ratio = res["shadows"]["frame"]["median_ms"] / res["no_shadows"]["frame"]["median_ms"]
    print(f"\nshadows cost x{ratio:.2f} of the shadow-free frame time (same run)")
    print(f"\n[degradations, severity 3, per frame]  {'median ms':>10}{'p99 ms':>10}")
    for k, st in res["degradations"].items():
        print(f"  {k:<16}{st['median_ms']:>28.1f}{st['p99_ms']:>10.1f}")
    print(f"  all six kinds: {res['degradations_all_kinds_median_ms']:.0f} ms per frame")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--azimuth-steps", type=int, default=2000)
    p.add_argument("--degrade-frames", type=int, default=5, help="frames used to time degradations")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args()
    res = run(args)
    report(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
