"""640x480 rgb8 image from one process to a callback in another: latency with and without our DDS profile.

Each configuration runs a fresh subscriber and publisher process pair (Fast DDS reads the profile once
per process). The publisher stamps header.stamp with the wall clock right before publish(); the
subscriber records wall clock at the start of its callback. Both run on this host, so the difference is
publish-to-callback latency.

    python benchmarks/bench_pubsub.py [--count 300] [--rate 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import array
import json
import os
import subprocess
import sys
import time

import numpy as np

TOPIC = "/bench/image"


def _env(profile: bool, domain: int) -> dict[str, str]:
    from perception_pkg.ros.dds import PROFILE_VARS, use_large_message_profile

    env = {k: v for k, v in os.environ.items() if k not in PROFILE_VARS}
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    if profile:
        use_large_message_profile(env)
    return env


def run_sub(count: int, out: str) -> None:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_sub")
    lat: list[float] = []

    def cb(msg: Image) -> None:
        now = time.time_ns()
        lat.append((now - (msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)) / 1e6)

    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Image, TOPIC, cb, qos)
    deadline = time.monotonic() + 120
    while len(lat) < count and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    np.save(out, np.asarray(lat))
    node.destroy_node()
    rclpy.shutdown()


def run_pub(count: int, rate: float) -> None:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_pub")
    pub = node.create_publisher(Image, TOPIC, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    msg = Image(height=480, width=640, encoding="rgb8", step=640 * 3)
    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    msg.data = array.array("B", frame.tobytes())
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.5)  # let the reliable reader finish matching its locators
    period = 1.0 / rate
    for _ in range(count + 20):  # extra messages cover any lost during start-up
        now = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 10**9)
        pub.publish(msg)
        time.sleep(period)
    node.destroy_node()
    rclpy.shutdown()


def measure(profile: bool, count: int, rate: float, domain: int, tmp: str) -> np.ndarray:
    env = _env(profile, domain)
    out = os.path.join(tmp, f"lat_{int(profile)}.npy")
    me = [sys.executable, os.path.abspath(__file__)]
    sub = subprocess.Popen([*me, "--role", "sub", "--count", str(count), "--out", out], env=env)
    pub = subprocess.Popen([*me, "--role", "pub", "--count", str(count), "--rate", str(rate)], env=env)
    pub.wait(timeout=180)
    sub.wait(timeout=180)
    return np.load(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--role", choices=["bench", "pub", "sub"], default="bench")
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--out", default="")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    if args.role == "sub":
        return run_sub(args.count, args.out)
    if args.role == "pub":
        return run_pub(args.count, args.rate)

    import tempfile

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        base_domain = 40 + os.getpid() % 50
        for i, (name, profile) in enumerate([("default", False), ("shm_16mb_profile", True)]):
            lat = measure(profile, args.count, args.rate, base_domain + i, tmp)
            results[name] = {
                "n": int(lat.size),
                "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
                "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
            }
    d, p = results["default"], results["shm_16mb_profile"]
    results["p50_ratio_default_over_profile"] = d["p50_ms"] / p["p50_ms"]
    print(f"{'config':<20}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}")
    for name in ("default", "shm_16mb_profile"):
        r = results[name]
        print(f"{name:<20}{r['n']:>6}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}")
    print(f"p50 ratio default/profile: {results['p50_ratio_default_over_profile']:.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
