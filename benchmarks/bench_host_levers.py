"""Each host-side lever of issue 17 on its own: the same function, same inputs, before and after a change.

The inputs are real: the shipped detector's outputs on the budget benchmark's 640x480 simulator frame
(12 objects) and the shipped pose model's outputs for 5 person boxes. Every lever is a function that
exists in both source trees under the same name, timed in CPU time of the calling thread (the minimum
over repeats), which a shared, busy machine disturbs far less than wall time:

    lift_3d         geometry3d.lift.lift_boxes3d                (the RTM3D solve of all 12 objects)
    rtm3d_decode    the card's Rtm3dDecoder on the raw outputs  (peaks, vertex grouping, extras)
    det_preprocess  Preprocessor on the 640x480 frame            (letterbox + normalise)
    det2d_msg       msgs.detection2d_array (rclpy classes)
    det3d_msg       msgs.detection3d_array (rclpy classes)
    pose_preprocess Preprocessor with 5 boxes                    (top-down crops + normalise)
    pose_decode     the card's integral decoder on 5 x 17 maps
    people_msg      msgs.pose_to_person_array (rclpy classes)
    skeleton_msg    viz.markers.skeleton_markers (rclpy classes)

    python benchmarks/bench_host_levers.py --before /tmp/hp_before [--rounds 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BOXES_5 = np.array(
    [
        [40, 100, 140, 420],
        [180, 80, 260, 330],
        [300, 150, 360, 300],
        [400, 60, 520, 470],
        [560, 200, 620, 380],
    ],
    dtype=np.float64,
)


def _cpu_us(fn: Callable[[], Any], budget_s: float = 0.4, repeats: int = 5) -> float:
    fn()
    t0 = time.thread_time()
    n = 0
    while time.thread_time() - t0 < budget_s / repeats or n < 3:
        fn()
        n += 1
    best = float("inf")
    for _ in range(repeats):
        t0 = time.thread_time()
        for _ in range(n):
            fn()
        best = min(best, (time.thread_time() - t0) / n)
    return best * 1e6


def measure() -> dict[str, float]:
    from perception_pkg.cards import load_card
    from perception_pkg.detection import load_detector, resolve_card
    from perception_pkg.geometry3d.lift import lift_boxes3d
    from perception_pkg.msgs import MessageFactory, detection2d_array, detection3d_array, make_header
    from perception_pkg.msgs.people import pose_to_person_array
    from perception_pkg.pose import PoseEstimator, default_pose_card
    from perception_pkg.sim import SceneConfig, generate_scene
    from perception_pkg.sim.bag import camera_model
    from perception_pkg.sim.render import render_frame
    from perception_pkg.viz.markers import skeleton_markers

    det = load_detector(
        resolve_card(""), backend="onnxruntime", score_threshold=0.3, threads=1, where="levers"
    )
    scene = generate_scene(7, SceneConfig.with_sensors(width=640, height=480, azimuth_steps=300))
    bgr = np.ascontiguousarray(render_frame(scene, 3).image[..., ::-1])
    camera = camera_model(scene)
    runner = det.runner
    prepared = runner.preprocess(bgr)
    outputs = runner.infer(prepared)
    result = det(bgr, camera)
    dets = result.detections
    rel = getattr(runner.decoder, "depth_prior_rel_std", None)
    types = MessageFactory.rclpy()
    header = make_header(types, 1_700_000_000_000_000_000, camera.frame_id)

    est = PoseEstimator(load_card(default_pose_card()), backend="onnxruntime", threads=1)
    prunner = est.runner
    pprep = prunner.preprocess(bgr, BOXES_5)
    pout = prunner.infer(pprep)
    pose = est(bgr, BOXES_5, np.full(5, 0.9))

    levers = {
        "lift_3d": lambda: lift_boxes3d(dets, camera, rel),
        "rtm3d_decode": lambda: runner.decoder(outputs),
        "det_preprocess": lambda: runner.preprocess(bgr),
        "det2d_msg": lambda: detection2d_array(result, header, types),
        "det3d_msg": lambda: detection3d_array(result, header, types),
        "pose_preprocess": lambda: prunner.preprocess(bgr, BOXES_5),
        "pose_decode": lambda: prunner.decoder(pout),
        "people_msg": lambda: pose_to_person_array(pose, header, types),
        "skeleton_msg": lambda: skeleton_markers(header, types, pose.keypoints, pose.scores, threshold=0.2),
    }
    out = {name: _cpu_us(fn) for name, fn in levers.items()}
    out["objects"] = len(dets)
    return out


def _worker(tree: Path) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker failed for {tree}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required="--worker" not in (argv or sys.argv))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(measure()))
        return 0
    after = Path(__file__).resolve().parents[1]
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        runs["before"].append(_worker(args.before.resolve()))
        runs["after"].append(_worker(after))
    med = {k: {name: float(np.median([r[name] for r in v])) for name in v[0]} for k, v in runs.items()}
    print(f"CPU time per call (us, thread time, min over repeats, median of {args.rounds} rounds)")
    print(f"{'lever':<18}{'before':>12}{'after':>12}{'faster':>9}")
    for name in med["before"]:
        if name == "objects":
            continue
        b, a = med["before"][name], med["after"][name]
        print(f"{name:<18}{b:>12.1f}{a:>12.1f}{b / a:>8.1f}x")
    print(f"objects: {med['before']['objects']:.0f} before, {med['after']['objects']:.0f} after")
    if args.json:
        args.json.write_text(json.dumps(med, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
