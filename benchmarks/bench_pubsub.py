"""Large messages between processes: how many arrive intact, and publish-to-callback latency, by size.

Each case runs a fresh subscriber and publisher process pair (Fast DDS reads its profile once per
process) from ``perception_pkg.ros.traffic``: the publisher stamps ``header.stamp`` with the wall
clock right before ``publish()`` and writes the stamp into a seeded payload; the subscriber records
the wall clock at the start of its callback and checks the payload byte for byte. Both run on this
host, so the difference is publish-to-callback latency.

Profiles: ``default`` (Fast DDS defaults: a camera driver, RViz, a recorder), ``ours``
(config/dds/fastdds_large_messages.xml) and ``before`` (the profile this repository shipped before:
shared memory with a 16 MB segment). Cases, as ``publisher -> subscriber``:

- ``default -> ours``: a driver on defaults feeding our node; the node's ``auto`` input reliability
  subscribes reliable to a reliable driver and best effort to a best-effort one (both measured, and
  best effort to a reliable driver, to show what ``auto`` buys);
- ``ours -> default``: our node's output to a consumer on defaults (best effort and reliable);
- ``default -> default`` and ``default -> before``: the baselines, measured in the same run.

    python benchmarks/bench_pubsub.py [--count 20] [--rate 5] [--sizes 640x480,1920x1080,3840x2160]
        [--cases default:ours,...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from perception_pkg.ros.traffic import Shape, child_env, publisher_args

TOPIC = "/bench/large"
BEFORE_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<dds xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"><profiles>
  <transport_descriptors>
    <transport_descriptor><transport_id>shm16</transport_id><type>SHM</type>
      <segment_size>16777216</segment_size><port_queue_capacity>64</port_queue_capacity></transport_descriptor>
    <transport_descriptor><transport_id>udp</transport_id><type>UDPv4</type></transport_descriptor>
  </transport_descriptors>
  <participant profile_name="before" is_default_profile="true"><rtps>
    <useBuiltinTransports>false</useBuiltinTransports>
    <userTransports><transport_id>shm16</transport_id><transport_id>udp</transport_id></userTransports>
  </rtps></participant>
</profiles></dds>
"""
# (publisher profile, subscriber profile, publisher reliability, subscriber reliability)
DEFAULT_CASES = [
    ("default", "default", "reliable", "best_effort"),  # a plain best-effort subscriber
    ("default", "before", "reliable", "best_effort"),  # our node before: old profile, best effort
    ("default", "ours", "reliable", "best_effort"),  # our profile, best effort: why auto matters
    ("default", "ours", "reliable", "reliable"),  # our node now (auto) with a reliable driver
    ("default", "ours", "best_effort", "best_effort"),  # our node now (auto) with a best-effort driver
    ("ours", "default", "reliable", "best_effort"),  # our output -> a best-effort viewer
    ("ours", "default", "reliable", "reliable"),  # our output -> RViz / a recorder (reliable)
]


def parse_case(text: str) -> tuple[str, str, str, str]:
    """``pub:sub[:pub_reliability[:sub_reliability]]``."""
    parts = text.split(":")
    pub, sub = parts[0], parts[1]
    pub_rel = parts[2] if len(parts) > 2 else "reliable"
    sub_rel = parts[3] if len(parts) > 3 else "best_effort"
    return pub, sub, pub_rel, sub_rel


def measure(
    case: tuple[str, str, str, str], shape: Shape, count: int, rate: float, domain: int, tmp: Path
) -> dict:
    pub_profile, sub_profile, pub_rel, sub_rel = case
    profiles = {"before": str(tmp / "before.xml")}
    base = {**os.environ, "ROS_DOMAIN_ID": str(domain)}
    base.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    out = tmp / f"sub_{domain}.json"
    spec = f"{shape.width}x{shape.height}" if shape.kind == "image" else f"{shape.points}pts"
    sub_cmd = [
        sys.executable,
        "-m",
        "perception_pkg.ros.traffic",
        "subscribe",
        "--topic",
        TOPIC,
        "--shape",
        spec,
        "--count",
        str(count),
        "--seconds",
        "120",
        "--reliability",
        sub_rel,
        "--out",
        str(out),
    ]
    sub = subprocess.Popen(
        sub_cmd,
        env=child_env(profiles.get(sub_profile, sub_profile), base),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert sub.stdout is not None
    sub.stdout.readline()  # "ready"
    pub_cmd = [sys.executable, *publisher_args(TOPIC, shape, rate=rate, count=count, reliability=pub_rel)]
    pub = subprocess.Popen(
        pub_cmd,
        env=child_env(profiles.get(pub_profile, pub_profile), base),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    pub_out, _ = pub.communicate(timeout=180)
    sent = int(pub_out.split()[-1]) if pub_out.strip() else 0
    try:
        sub.wait(timeout=3)
    except subprocess.TimeoutExpired:
        sub.terminate()
        sub.wait(timeout=30)
    got = json.loads(out.read_text())
    lat = np.asarray(got["latency_ms"])
    return {
        "case": f"{pub_profile}({pub_rel}) -> {sub_profile}({sub_rel})",
        "size": str(shape),
        "mbytes": shape.nbytes / 1e6,
        "sent": sent,
        "received": got["received"],
        "intact": got["intact"],
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--rate", type=float, default=5.0)
    ap.add_argument(
        "--sizes",
        default="640x480,1920x1080,3840x2160",
        help="comma-separated WxH (rgb8) or Npts (cloud), e.g. 1Mpts",
    )
    ap.add_argument("--cases", default="", help="comma-separated pub:sub[:pub_rel[:sub_rel]]; default: all")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    cases = [parse_case(c) for c in args.cases.split(",")] if args.cases else DEFAULT_CASES
    shapes = [Shape.parse(s) for s in args.sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "before.xml").write_text(BEFORE_PROFILE)
        domain = 40 + os.getpid() % 50
        for shape in shapes:
            for case in cases:
                domain = 40 + (domain - 39) % 150
                r = measure(case, shape, args.count, args.rate, domain, Path(tmp))
                results.append(r)
                print(
                    f"{r['size']:>16} {r['mbytes']:6.1f} MB  {r['case']:<44} "
                    f"intact {r['intact']:>3}/{r['sent']:<3} "
                    f"p50 {r['p50_ms']:8.2f} ms  p99 {r['p99_ms']:8.2f} ms",
                    flush=True,
                )
                time.sleep(0.5)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
