"""Message -> numpy conversion on the hot path, against what pure-Python readers do.

PointCloud2: ~120k points in the real Luminar bag's 32-byte layout (x, y, z, intensity float32 at 0, 4,
8, 16; times and laser id after), synthetic values, to (N, 3) float32 with ``pointcloud_to_xyz`` versus
a per-point ``struct.unpack_from`` loop (sensor_msgs_py's read_points without numpy does the same).
Image: 640x480 rgb8 to an array with ``image_to_array``, which must be a view of the message buffer.
Both message flavours are measured where available (rosbags dataclasses; rclpy messages, whose data is
an array.array). The ratio is measured in the same run: machines here are shared and noisy.

    python benchmarks/bench_convert.py [--reps 200] [--loop-reps 5] [--points 120000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# the Luminar layout and its point generator are the tests' own (one definition of a real driver's layout)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.convert import luminar_like_structured

from perception_pkg.msgs import (
    MessageFactory,
    array_to_image,
    image_to_array,
    make_header,
    pointcloud_to_structured,
    pointcloud_to_xyz,
    structured_to_pointcloud,
)


def timings(fn: Callable[[], Any], reps: int, warmup: int) -> np.ndarray:
    """Seconds per call, one perf_counter pair around each call, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = np.empty(reps)
    for i in range(reps):
        start = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - start
    return out


def summary(name: str, samples: np.ndarray, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "reps": len(samples),
        "median_ms": float(np.median(samples) * 1e3),
        "p99_ms": float(np.percentile(samples, 99) * 1e3),
        "min_ms": float(samples.min() * 1e3),
        **extra,
    }


def struct_loop_xyz(msg: Any) -> np.ndarray:
    """The pure-Python baseline: one struct.unpack_from per point, NaNs skipped like skip_nans."""
    data = bytes(msg.data)
    unpack = struct.Struct("<fff").unpack_from
    step = msg.point_step
    out = []
    for i in range(msg.width * msg.height):
        x, y, z = unpack(data, i * step)
        if x == x and y == y and z == z:  # NaN check without math.isnan's call
            out.append((x, y, z))
    return np.array(out, dtype=np.float32).reshape(-1, 3)


def flavours() -> list[tuple[str, MessageFactory]]:
    found = [("rosbags", MessageFactory.rosbags())]
    try:
        found.append(("rclpy", MessageFactory.rclpy()))
    except ImportError:
        print("rclpy not available: measuring rosbags messages only", file=sys.stderr)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=200, help="timed calls per fast path (>= 50)")
    parser.add_argument("--loop-reps", type=int, default=5, help="timed calls of the struct loop")
    parser.add_argument("--points", type=int, default=120_000)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    reps = max(args.reps, 50)
    rows: list[dict[str, Any]] = []
    checks: dict[str, bool] = {}

    for flavour, types in flavours():
        header = make_header(types, 1_604_515_190_231_374_463, "luminar_lidar")
        msg = structured_to_pointcloud(luminar_like_structured(args.points), header, types)
        fast = timings(lambda m=msg: pointcloud_to_xyz(m), reps, warmup=10)
        loop = timings(lambda m=msg: struct_loop_xyz(m), args.loop_reps, warmup=1)
        same = np.array_equal(pointcloud_to_xyz(msg), struct_loop_xyz(msg))
        ratio = float(np.median(loop) / np.median(fast))
        rows.append(summary(f"{flavour}: cloud {args.points} pts -> xyz (pointcloud_to_xyz)", fast))
        rows.append(summary(f"{flavour}: cloud {args.points} pts -> xyz (struct loop)", loop))
        rows[-2]["speedup_vs_struct_loop"] = ratio
        checks[f"{flavour}: xyz equals struct loop"] = same
        checks[f"{flavour}: speedup >= 100x"] = ratio >= 100

        rows.append(
            summary(
                f"{flavour}: cloud -> xyz+intensity",
                timings(lambda m=msg: pointcloud_to_xyz(m, with_intensity=True), reps, 10),
            )
        )
        nan_msg = structured_to_pointcloud(
            luminar_like_structured(args.points, nan_fraction=0.3), header, types
        )
        rows.append(
            summary(
                f"{flavour}: cloud (30% NaN) -> xyz, NaNs dropped",
                timings(lambda m=nan_msg: pointcloud_to_xyz(m), reps, 10),
            )
        )
        rows.append(
            summary(
                f"{flavour}: cloud -> structured view",
                timings(lambda m=msg: pointcloud_to_structured(m), reps, 10),
            )
        )
        checks[f"{flavour}: structured is a view"] = bool(
            np.shares_memory(pointcloud_to_structured(msg), np.frombuffer(msg.data, np.uint8))
        )

        pixels = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
        img = array_to_image(pixels, "rgb8", header, types)
        rows.append(
            summary(
                f"{flavour}: image 640x480 rgb8 -> array", timings(lambda m=img: image_to_array(m), reps, 10)
            )
        )
        view = image_to_array(img)
        checks[f"{flavour}: image array is a view"] = bool(
            np.shares_memory(view, np.frombuffer(img.data, np.uint8)) and np.array_equal(view, pixels)
        )
        rows.append(
            summary(
                f"{flavour}: array 640x480 rgb8 -> image (copy)",
                timings(lambda p=pixels, h=header, t=types: array_to_image(p, "rgb8", h, t), reps, 10),
            )
        )

    width = max(len(r["name"]) for r in rows)
    print(f"{'case':<{width}}  {'reps':>5}  {'median ms':>10}  {'p99 ms':>9}  speedup")
    for r in rows:
        speed = f"{r['speedup_vs_struct_loop']:.0f}x" if "speedup_vs_struct_loop" in r else ""
        print(f"{r['name']:<{width}}  {r['reps']:>5}  {r['median_ms']:>10.4f}  {r['p99_ms']:>9.4f}  {speed}")
    print()
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "command": " ".join(sys.argv),
                    "python": platform.python_version(),
                    "numpy": np.__version__,
                    "machine": platform.machine(),
                    "rows": rows,
                    "checks": checks,
                },
                fh,
                indent=2,
            )
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
