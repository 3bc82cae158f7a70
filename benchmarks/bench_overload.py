"""The detection node at twice its capacity: latency over time, the longest stall, memory and counters.

1. Capacity: the node's pipeline (same card, backend and threads) runs the benchmark frame in this
   process; capacity = 1 / median processing time.
2. The node runs in a child process (``perception run --nodes detection``); another child publishes
   frames and their CameraInfo at ``factor`` x capacity on Fast DDS defaults (a camera driver),
   stamped like a camera at each frame's scheduled capture time (its lateness is reported); this
   process subscribes to ``/detection/detections_2d`` and ``/diagnostics``, so a result's end-to-end
   latency is its arrival time minus its header stamp.
3. Every 5 s: outputs, latency p50/p99/max, the longest gap between outputs, the node's RSS. At the end:
   the longest stall over the whole run, the node's counters (received = processed + dropped + malformed
   must hold once the input stops) and how many frames sent never reached ``received``.

    python benchmarks/bench_overload.py [--seconds 60] [--factor 2] [--threads 1] [--shape 640x480]
        [--input-reliability auto] [--publisher-reliability reliable] [--json out.json]

Exits 1 when a promise of the latest-frame design is broken: p99 > 2 x processing time, a stall over
250 ms, RSS growing by more than 10% after warm-up, or the counters not adding up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from perception_pkg.ros.traffic import (
    Arrivals,
    Payload,
    Shape,
    camera_info_for,
    child_env,
    diagnostic_values,
    longest_gap_ms,
    make_message,
    publisher_args,
    rss_mb,
    set_stamp,
    windows,
)

IMAGE_TOPIC = "/bench/overload/image_raw"
INFO_TOPIC = "/bench/overload/camera_info"
OUTPUT_TOPIC = "/detection/detections_2d"
WINDOW_S = 5.0


def processing_time_s(shape: Shape, backend: str, threads: int, reps: int = 30) -> float:
    """Median time of the detection pipeline's ``run`` on the benchmark frame with its CameraInfo (what
    the node's worker does per frame: deserialisation aside, message conversion, inference, 3D boxes and
    output messages)."""
    from perception_pkg import pipelines
    from perception_pkg.msgs import MessageFactory

    spec = pipelines.get("detection")
    settings = spec.settings_from({"backend": backend, "threads": threads, "image_topic": IMAGE_TOPIC})
    types = MessageFactory.rclpy()
    pipeline = spec.create(settings, types, live=True)
    msg = make_message(shape, types)
    msg.data = Payload(shape).base.tobytes()
    info = camera_info_for(shape, types)
    set_stamp(msg, 1)
    set_stamp(info, 1)
    pipeline.accept("camera_info", info, 0.0)
    times = []
    for i in range(reps + 5):
        (job,) = pipeline.accept("image", msg, 0.0)
        t = time.perf_counter()
        pipeline.run(job, lambda key: False)
        if i >= 5:
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def params_text(args: argparse.Namespace) -> str:
    return (
        "detection:\n  ros__parameters:\n"
        f"    image_topic: {IMAGE_TOPIC}\n    camera_info_topic: {INFO_TOPIC}\n"
        f"    backend: {args.backend}\n    threads: {args.threads}\n"
        "    diagnostics_period_s: 1.0\n    status_window_s: 1.0\n"
        f"    input_qos.reliability: {args.input_reliability}\n"
    )


def run(args: argparse.Namespace) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import Detection2DArray

    from perception_pkg.ros.dds import use_large_message_profile

    shape = Shape.parse(args.shape)
    proc_s = processing_time_s(shape, args.backend, args.threads)
    rate = args.factor * (1.0 / proc_s)
    print(
        f"processing time {proc_s * 1e3:.1f} ms -> capacity {1 / proc_s:.1f} Hz; sending at {rate:.1f} Hz "
        f"({args.factor:g}x) for {args.seconds:g} s, {shape}"
    )

    use_large_message_profile()
    rclpy.init()
    node = rclpy.create_node("bench_overload_probe")
    outputs = Arrivals()
    diags: list[tuple[float, tuple]] = []

    def on_diag(msg: DiagnosticArray) -> None:
        got = diagnostic_values(msg, "/detection")
        if got is not None:
            diags.append((time.monotonic(), got))

    node.create_subscription(
        Detection2DArray, OUTPUT_TOPIC, outputs, QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    )
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()

    with tempfile.TemporaryDirectory() as tmp:
        params = Path(tmp) / "params.yaml"
        params.write_text(params_text(args))
        node_cmd = [
            sys.executable,
            "-m",
            "perception_pkg.cli.main",
            "run",
            "--nodes",
            "detection",
            "--params-file",
            str(params),
        ]
        node_proc = subprocess.Popen(
            node_cmd, env=child_env("ours"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            deadline = time.monotonic() + 60
            while not diags and time.monotonic() < deadline and node_proc.poll() is None:
                time.sleep(0.1)
            if not diags:
                raise SystemExit(
                    f"the node did not start:\n{node_proc.stdout.read() if node_proc.stdout else ''}"
                )
            pub_cmd = [
                sys.executable,
                *publisher_args(
                    IMAGE_TOPIC,
                    shape,
                    rate=rate,
                    seconds=args.seconds,
                    reliability=args.publisher_reliability,
                    depth=5,
                    camera_info_topic=INFO_TOPIC,
                    stamp="capture",
                ),
            ]
            pub = subprocess.Popen(pub_cmd, env=child_env("default"), stdout=subprocess.PIPE, text=True)
            assert pub.stdout is not None
            line = pub.stdout.readline()
            if line.strip() != "ready":
                raise SystemExit(f"publisher failed: {line}{pub.stdout.read()}")
            t0 = time.time_ns()
            mono0 = time.monotonic()
            t_run = [mono0 + 5.0, 0.0]  # diagnostics after the first 5 s count
            rss: list[tuple[float, float]] = []
            next_sample = time.monotonic()
            while pub.poll() is None:
                if time.monotonic() >= next_sample:
                    rss.append(((time.time_ns() - t0) / 1e9, rss_mb(node_proc.pid)))
                    next_sample += WINDOW_S
                time.sleep(0.05)
            t1 = time.time_ns()
            t_run[1] = time.monotonic()
            pub_out = pub.stdout.read()
            sent = int(pub_out.split()[-1])
            lateness = next((ln for ln in pub_out.splitlines() if ln.startswith("lateness")), "")
            time.sleep(2.5)  # the last frames drain, a final diagnostics message comes
            final = diags[-1][1]
        finally:
            node_proc.send_signal(2)
            try:
                out, _ = node_proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                node_proc.kill()
                out, _ = node_proc.communicate()
    executor.shutdown()
    spinner.join(timeout=5)
    node.destroy_node()
    rclpy.try_shutdown()

    rec, stamps = outputs.arrays()
    last_line = next((ln for ln in pub_out.splitlines() if ln.startswith("last_sent_ns")), "")
    t_last_send = int(last_line.split()[1]) if last_line else t1 - int(1.0e9)  # it lingers 1 s after
    wins = windows(rec, stamps, t0, t_last_send, WINDOW_S)
    # the node's worst processing time (p99 of its 1 s diagnostics windows) in each 5 s window
    node_proc_p99 = []
    for w in wins:
        lo, hi = (
            mono0 + w.start_s + 1.0,
            mono0 + w.start_s + WINDOW_S + 1.0,
        )  # a diagnostic describes the s before
        vals = [float(d[2].get("processing_p99_ms", "nan")) for t, d in diags if lo <= t < hi]
        node_proc_p99.append(max(vals) if vals else float("nan"))
    lat = (rec - stamps) / 1e6
    in_run = (rec >= t0) & (rec <= t_last_send)
    warm = lat[in_run][len(lat[in_run]) // 10 :]  # after the first tenth (engine warm-up, discovery)
    level, message, counters = final
    during = [d for t, d in diags if t_run[0] <= t <= t_run[1]]
    node_ms = [float(v["processing_p50_ms"]) for _, _, v in during if float(v.get("processing_p50_ms", 0))]

    def node_median(key: str) -> float:
        vals = [float(v[key]) for _, _, v in during if key in v and float(v[key])]
        return float(np.median(vals)) if vals else float("nan")

    c = {k: int(counters[k]) for k in ("received", "processed", "dropped", "malformed", "errors")}
    error_lines = [ln for ln in out.splitlines() if "[ERROR]" in ln or "Traceback" in ln]
    result = {
        "shape": str(shape),
        "processing_ms": proc_s * 1e3,
        "node_processing_ms": float(np.median(node_ms)) if node_ms else float("nan"),
        # the node's own view, medians of its per-window figures: receipt -> published, stamp -> published
        "node_latency_p50_ms": node_median("latency_p50_ms"),
        "node_latency_p99_ms": node_median("latency_p99_ms"),
        "node_pipeline_latency_p50_ms": node_median("pipeline_latency_p50_ms"),
        "node_pipeline_latency_p99_ms": node_median("pipeline_latency_p99_ms"),
        "rate_hz": rate,
        "seconds": args.seconds,
        "sent": sent,
        "publisher_lateness": lateness,
        "outputs": int(rec.size),
        "p50_ms": float(np.percentile(warm, 50)),
        "p99_ms": float(np.percentile(warm, 99)),
        "max_ms": float(warm.max()),
        "longest_stall_ms": longest_gap_ms(rec, t0 + int(1e9), t_last_send),
        "windows": [
            {**w.__dict__, "node_processing_p99_ms": p} for w, p in zip(wins, node_proc_p99, strict=True)
        ],
        "rss_mb": rss,
        "counters": c,
        "never_received": sent - c["received"],
        "final_level": level,
        "final_message": message,
        "loss_estimate": counters.get("input_loss_estimate", ""),
        "node_error_lines": error_lines[:5],
        "node_exit_code": node_proc.returncode,
    }
    return result


def report(r: dict) -> list[str]:
    print(f"\n{'t (s)':>6}{'outputs':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'gap ms':>9}{'proc p99':>10}")
    for w in r["windows"]:
        print(
            f"{w['start_s']:>6.0f}{w['count']:>9}{w['p50_ms']:>9.1f}{w['p99_ms']:>9.1f}{w['max_ms']:>9.1f}"
            f"{w['longest_gap_ms']:>9.0f}{w['node_processing_p99_ms']:>10.0f}"
        )
    print("(proc p99: the node's own worst processing time per frame in the window, from its diagnostics)")
    print(f"publisher (a camera: stamps at the scheduled capture time): {r['publisher_lateness']}")
    print("RSS (MB) every 5 s: " + " ".join(f"{m:.0f}" for _, m in r["rss_mb"]))
    c = r["counters"]
    print(
        f"whole run (after the first tenth): p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
        f"max {r['max_ms']:.1f} ms; longest stall {r['longest_stall_ms']:.0f} ms"
    )
    print(
        f"sent {r['sent']}, received {c['received']} (never received {r['never_received']}), processed "
        f"{c['processed']}, dropped {c['dropped']}, malformed {c['malformed']}, errors {c['errors']}; "
        f"loss estimate {r['loss_estimate'] or '-'}"
    )
    print(
        f"processing time: {r['processing_ms']:.1f} ms alone, {r['node_processing_ms']:.1f} ms in the node "
        f"under load (median of its diagnostics); p99 / in-node processing "
        f"{r['p99_ms'] / r['node_processing_ms']:.2f}"
    )
    print(
        "the node's view (medians of its 5 s windows): receipt -> published "
        f"p50 {r['node_latency_p50_ms']:.1f} / p99 {r['node_latency_p99_ms']:.1f} ms, stamp -> published "
        f"p50 {r['node_pipeline_latency_p50_ms']:.1f} / p99 {r['node_pipeline_latency_p99_ms']:.1f} ms"
    )
    print(
        f"p99 / processing time: {r['p99_ms'] / r['processing_ms']:.2f}; final level {r['final_level']} "
        f"'{r['final_message']}'; node exit code {r['node_exit_code']}"
    )
    broken = []
    if r["p99_ms"] > 2 * r["processing_ms"]:
        broken.append(f"p99 {r['p99_ms']:.1f} ms > 2 x processing {r['processing_ms']:.1f} ms")
    if r["longest_stall_ms"] > 250:
        broken.append(f"stall of {r['longest_stall_ms']:.0f} ms")
    rss = [m for _, m in r["rss_mb"][2:]]
    if rss and max(rss) > 1.1 * rss[0]:
        broken.append(f"RSS grew from {rss[0]:.0f} to {max(rss):.0f} MB")
    if c["received"] != c["processed"] + c["dropped"] + c["malformed"] + c["errors"]:
        broken.append("received != processed + dropped + malformed + errors")
    if r["node_error_lines"]:
        broken.append(f"node logged errors: {r['node_error_lines']}")
    for b in broken:
        print(f"BROKEN: {b}")
    return broken


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--factor", type=float, default=2.0, help="input rate / measured capacity")
    ap.add_argument("--threads", type=int, default=1, help="engine CPU threads")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--shape", default="640x480", help="WxH rgb8 frames")
    ap.add_argument("--input-reliability", choices=("auto", "best_effort", "reliable"), default="auto")
    ap.add_argument("--publisher-reliability", choices=("best_effort", "reliable"), default="reliable")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    r = run(args)
    broken = report(r)
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
