"""Camera message in -> Detection2DArray out, through the detection node's own code path, in process.

A DetectionNode is created (rclpy, no spinning) and ``node.process(msg)`` is called on a 640x480 rgb8
Image and on the same frame as a JPEG CompressedImage: conversion, preprocess, inference, decode, 3D lift
(when the card has 3D heads and a CameraInfo matches), message building and publishing, exactly as the
worker thread runs them. The node module's converter and builder functions are wrapped with timers to
split the total per stage; the detector reports its own stages.

Baselines measured in the same run, for ratios (the machines are noisy; quote ratios):
  - inference alone (engine.infer on an already prepared tensor): total / inference is the node's
    overhead factor around the network;
  - a copying, cv_bridge-style conversion (``np.array(msg.data)`` + reshape + colour conversion) against
    the node's conversion (a view of the message buffer + one colour conversion).

    python benchmarks/bench_detect.py [--card models/sim_detector/card.yaml] [--reps 100] [--json out.json]
    python benchmarks/bench_detect.py --untrained    # no shipped card yet: an untrained TinyCenterNet

The frame is a simulator frame (640x480, with its CameraInfo) when open3d is installed, else noise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

STAGES = ("convert", "preprocess", "inference", "decode", "lift_3d", "build_msgs", "publish_other")
HW = (480, 640)


def _untrained_card(directory: Path) -> Path:
    """An untrained TinyCenterNet (2 classes, 384x512 letterbox, ~2.2 GMAC): the cost class of an embedded
    detector, for timing before the shipped model exists. Its random heads give many weak peaks."""
    import torch  # export needs it: fail here with a clear ImportError

    from perception_pkg.training.formats import centernet_card, write_model
    from perception_pkg.training.models import TinyCenterNet

    torch.manual_seed(0)
    net = TinyCenterNet(num_classes=2, width=24).eval()
    return write_model(
        net, centernet_card("untrained_tiny_centernet", (384, 512), ["person", "car"]), directory
    )


def _frame(tmp: Path) -> tuple[np.ndarray, Any]:
    """(RGB image, CameraModel or None): a simulator frame when the simulator can run."""
    try:
        from perception_pkg.sim import SceneConfig, generate_scene
        from perception_pkg.sim.bag import camera_model
        from perception_pkg.sim.render import render_frame

        scene = generate_scene(7, SceneConfig.with_sensors(width=HW[1], height=HW[0], azimuth_steps=300))
        return render_frame(scene, 3).image, camera_model(scene)
    except ImportError as exc:
        print(f"simulator unavailable ({exc}); timing a noise image", file=sys.stderr)
        return np.random.default_rng(0).integers(0, 256, (*HW, 3), dtype=np.uint8), None


def _pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1e3
    return {"p50_ms": float(np.median(a)), "p99_ms": float(np.percentile(a, 99))} if a.size else {}


class _Timer:
    """Wraps a function, adding its wall time to the current frame's stage total."""

    def __init__(self) -> None:
        self.frame: dict[str, float] = {}

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.frame[stage] = self.frame.get(stage, 0.0) + time.perf_counter() - t0

        return timed


class _RecordingDetector:
    """Forwards to the real detector and keeps the stage timings it reports."""

    def __init__(self, detector: Any, timer: _Timer) -> None:
        self._d, self._timer = detector, timer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._d, name)

    def __call__(self, image: np.ndarray, camera: Any = None) -> Any:
        result = self._d(image, camera)
        for k, v in result.timings.items():
            self._timer.frame[k] = self._timer.frame.get(k, 0.0) + v
        return result


def _run_node(detector: Any, msg: Any, info: Any, compressed: bool, reps: int, warmup: int) -> dict[str, Any]:
    """Times the node's work on ``msg`` (``pipeline.accept`` + ``DetectionNode.process``, what its
    callback and worker do): total and per stage (seconds lists)."""
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    import perception_pkg.pipelines.detection as mod
    from perception_pkg.ros.nodes.detection import DetectionNode

    ctx = Context()
    rclpy.init(context=ctx)
    timer = _Timer()
    saved = {n: getattr(mod, n) for n in ("image_message_to_bgr", "detection2d_array", "detection3d_array")}
    try:
        mod.image_message_to_bgr = timer.wrap("convert", saved["image_message_to_bgr"])
        mod.detection2d_array = timer.wrap("build_msgs", saved["detection2d_array"])
        mod.detection3d_array = timer.wrap("build_msgs", saved["detection3d_array"])
        node = DetectionNode(
            context=ctx,
            detector=_RecordingDetector(detector, timer),
            parameter_overrides=[Parameter("compressed", value=compressed)],
        )
        if info is not None:
            node.pipeline.accept("camera_info", info, time.monotonic())  # what the node's callback does
        totals: list[float] = []
        hosts: list[float] = []  # everything but inference, per frame (issue 17's host budget)
        stages: dict[str, list[float]] = {s: [] for s in STAGES}
        for i in range(warmup + reps):
            timer.frame = {}
            t0 = time.perf_counter()
            for job in node.pipeline.accept("image", msg, t0):
                node.process(job)
            total = time.perf_counter() - t0
            if i < warmup:
                continue
            totals.append(total)
            hosts.append(total - timer.frame.get("inference", 0.0))
            known = 0.0
            for s in STAGES[:-1]:
                stages[s].append(timer.frame.get(s, 0.0))
                known += timer.frame.get(s, 0.0)
            stages["publish_other"].append(total - known)
        pipe = node.pipeline
        node.destroy_node()
    finally:
        for n, fn in saved.items():
            setattr(mod, n, fn)
        rclpy.shutdown(context=ctx)
    return {
        "total": _pct(totals),
        "host": _pct(hosts),
        "stages": {s: _pct(v) for s, v in stages.items() if any(v)},
        "detections": pipe.last_detections,
        "camera_info_status": pipe.camera_info_status,
    }


def _bench(fn: Callable[[], Any], reps: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return _pct(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--card", default="", help="detection card (default: the shipped models/sim_detector)")
    ap.add_argument("--untrained", action="store_true", help="export and time an untrained TinyCenterNet")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="engine CPU threads (0 = backend default)")
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument(
        "--score-threshold",
        type=float,
        default=None,
        help="detector score threshold (default 0.3; 0 with --untrained, so its ~100 weak peaks make the "
        "message building cost visible)",
    )
    ap.add_argument("--json", default="", help="also write the figures to this file")
    args = ap.parse_args(argv)

    from perception_pkg.detection import load_detector, resolve_card
    from perception_pkg.msgs import (
        MessageFactory,
        array_to_compressed,
        array_to_image,
        image_to_bgr,
        make_header,
        model_to_camera_info,
    )
    from perception_pkg.ros.dds import use_large_message_profile

    use_large_message_profile()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        card = _untrained_card(tmp / "model") if args.untrained else resolve_card(args.card)
        if not card.is_file():
            print(f"bench_detect: card not found: {card} (pass --card PATH, or --untrained)", file=sys.stderr)
            return 2
        threshold = (
            args.score_threshold if args.score_threshold is not None else (0.0 if args.untrained else 0.3)
        )
        detector = load_detector(
            card, backend=args.backend, score_threshold=threshold, threads=args.threads, where="bench_detect"
        )
        rgb, camera = _frame(tmp)
        types = MessageFactory.rclpy()
        header = make_header(
            types, 1_700_000_000_000_000_000, camera.frame_id if camera else "camera_optical"
        )
        image_msg = array_to_image(rgb, "rgb8", header, types)
        jpeg_msg = array_to_compressed(rgb, header, types, color="rgb", quality=90)
        info = model_to_camera_info(camera, header, types) if camera is not None else None

        results: dict[str, Any] = {
            "card": str(card),
            "engine": detector.runner.engine.describe(),
            "has_3d": bool(detector.has_3d),
            "image": f"{HW[1]}x{HW[0]}",
            "reps": args.reps,
            "score_threshold": threshold,
        }
        results["Image rgb8"] = _run_node(detector, image_msg, info, False, args.reps, args.warmup)
        results["CompressedImage jpeg"] = _run_node(detector, jpeg_msg, info, True, args.reps, args.warmup)

        prepared = detector.runner.preprocess(image_to_bgr(image_msg))
        results["baseline inference alone"] = _bench(
            lambda: detector.runner.infer(prepared), args.reps, args.warmup
        )
        h, w = rgb.shape[:2]
        results["baseline copying conversion"] = _bench(
            lambda: cv2.cvtColor(
                np.array(image_msg.data, dtype=np.uint8).reshape(h, w, 3), cv2.COLOR_RGB2BGR
            ),
            args.reps,
            args.warmup,
        )
        results["node conversion"] = _bench(lambda: image_to_bgr(image_msg), args.reps, args.warmup)

    infer = results["baseline inference alone"]["p50_ms"]
    results["ratios"] = {
        "Image total / inference alone (p50)": results["Image rgb8"]["total"]["p50_ms"] / infer,
        "Compressed total / inference alone (p50)": results["CompressedImage jpeg"]["total"]["p50_ms"]
        / infer,
        # the host budget: all but the network, against the network in the same frames
        "Image host / in-frame inference (p50)": results["Image rgb8"]["host"]["p50_ms"]
        / results["Image rgb8"]["stages"]["inference"]["p50_ms"],
        "copying / node conversion (p50)": results["baseline copying conversion"]["p50_ms"]
        / results["node conversion"]["p50_ms"],
    }
    _print(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def _print(r: dict[str, Any]) -> None:
    print(
        f"card {r['card']}  engine {r['engine']}  3D heads {r['has_3d']}  "
        f"frame {r['image']}  reps {r['reps']}"
    )
    print(f"{'case / stage':<38}{'p50 ms':>10}{'p99 ms':>10}")
    for case in ("Image rgb8", "CompressedImage jpeg"):
        c = r[case]
        print(
            f"{case + ' -> Detection2DArray':<38}{c['total']['p50_ms']:>10.3f}{c['total']['p99_ms']:>10.3f}"
        )
        for stage, v in c["stages"].items():
            print(f"{'  ' + stage:<38}{v['p50_ms']:>10.3f}{v['p99_ms']:>10.3f}")
        print(f"{'  host (total - inference)':<38}{c['host']['p50_ms']:>10.3f}{c['host']['p99_ms']:>10.3f}")
        print(f"{'  (detections, CameraInfo)':<38}{c['detections']:>10}  {c['camera_info_status']}")
    for case in ("baseline inference alone", "baseline copying conversion", "node conversion"):
        print(f"{case:<38}{r[case]['p50_ms']:>10.3f}{r[case]['p99_ms']:>10.3f}")
    for name, value in r["ratios"].items():
        print(f"{name:<50}{value:>8.2f}x")


if __name__ == "__main__":
    sys.exit(main())
