"""Seeded malformed sensor messages over the wire: the fuzz run of benchmarks/fuzz_wire.py and its short
CI version (tests/test_ros_fuzz.py).

:func:`cases` yields, for one of Image, CompressedImage, CameraInfo and PointCloud2, a reproducible mix
(from ``seed``) of

- ``valid`` messages (small, well formed),
- ``field`` faults: well-formed CDR whose fields disagree or make no sense (sizes against data, steps,
  encodings and formats, field layouts, non-finite or impossible calibration, undecodable or truncated
  JPEG/PNG, absurd dimensions),
- ``cdr`` faults: serialized bytes cut short, with bytes flipped, with a length field made huge,
  garbage after a valid encapsulation, or a single byte, published as raw CDR
  (``Publisher.publish(bytes)``). Never an empty payload: one stalls a reliable Fast DDS stream for
  good (measured: nothing published after it arrives, Fast DDS defaults on both sides), and no ROS
  publisher can send one.

The *intent* is recorded per case; what the node makes of it (processed, dropped by the latest-frame
slot, malformed, error) is its own business, as long as every message ends in exactly one counter and
nothing crashes. The publisher child (``python -m perception_pkg.ros.fuzz publish ...``) sends them
reliably at a bounded rate and prints ``sent N`` and the count per intent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

KINDS = ("image", "compressed", "camera_info", "cloud")
MSG_TYPES = {
    "image": "sensor_msgs/msg/Image",
    "compressed": "sensor_msgs/msg/CompressedImage",
    "camera_info": "sensor_msgs/msg/CameraInfo",
    "cloud": "sensor_msgs/msg/PointCloud2",
}
_BPP = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4, "mono16": 2, "8UC3": 3, "16UC1": 2}


@dataclass
class Case:
    intent: str  # "valid" | "field" | "cdr"
    what: str  # a short description of the fault
    payload: Any  # a message, or bytes (raw CDR)


def _header(types: Any, rng: np.random.Generator, i: int) -> Any:
    from perception_pkg.msgs import make_header

    return make_header(types, 1_000_000_000 + i * 10_000_000, "fuzz_cam" if rng.random() < 0.9 else "")


def _image(types: Any, rng: np.random.Generator, i: int) -> Case:
    h, w = int(rng.integers(1, 48)), int(rng.integers(1, 64))
    enc = str(rng.choice(list(_BPP)))
    step = w * _BPP[enc]
    data = rng.integers(0, 256, step * h, dtype=np.uint8).tobytes()
    msg = types.Image(header=_header(types, rng, i), height=h, width=w, encoding=enc, step=step, data=data)
    if rng.random() < 0.25:
        return Case("valid", enc, msg)
    fault = int(rng.integers(0, 10))
    if fault == 0:
        msg.encoding = str(rng.choice(["", "32FC1", "yuv422", "bayer_rggb8", "rgb16", "64FC1", "RGB8", "x"]))
    elif fault == 1:
        msg.step = int(rng.integers(0, max(1, step)))
    elif fault == 2:
        msg.step = int(rng.choice([2**31, 2**32 - 1, step * 1000]))
    elif fault == 3:
        msg.data = data[: int(rng.integers(0, max(1, len(data))))]
    elif fault == 4:
        msg.data = data + bytes(int(rng.integers(1, 100)))
    elif fault == 5:
        msg.height, msg.width = int(rng.choice([0, h])), int(rng.choice([0, w])) if rng.random() < 0.5 else 0
    elif fault == 6:
        msg.height, msg.width = 65535, 65535
    elif fault == 7:
        msg.is_bigendian = 1
        msg.encoding = "mono16"
        msg.step = w * 2
        msg.data = rng.integers(0, 256, w * 2 * h, dtype=np.uint8).tobytes()
    elif fault == 8:
        msg.encoding, msg.width, msg.step = "yuv422", w | 1, (w | 1) * 2
        msg.data = bytes((w | 1) * 2 * h)
    else:
        msg.height = h + int(rng.integers(1, 5))
    return Case("field", f"image fault {fault}", msg)


def _compressed(types: Any, rng: np.random.Generator, i: int) -> Case:
    import cv2

    h, w = int(rng.integers(2, 48)), int(rng.integers(2, 64))
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    fmt = str(rng.choice(["jpeg", "png"]))
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", img)
    assert ok
    data = buf.tobytes()
    msg = types.CompressedImage(header=_header(types, rng, i), format=fmt, data=data)
    if rng.random() < 0.25:
        return Case("valid", fmt, msg)
    fault = int(rng.integers(0, 8))
    if fault == 0:
        msg.format = str(
            rng.choice(["", "bmp", "rgb8; jpeg compressed bgr8", "16UC1; compressedDepth png", "?"])
        )
    elif fault == 1:
        msg.data = rng.integers(0, 256, int(rng.integers(0, 400)), dtype=np.uint8).tobytes()
    elif fault == 2:
        msg.data = data[: int(rng.integers(0, len(data)))]
    elif fault == 3:  # bytes corrupted inside the entropy-coded data
        b = bytearray(data)
        for at in rng.integers(20, len(b), int(rng.integers(1, 50))):
            b[int(at)] = int(rng.integers(0, 256))
        msg.data = bytes(b)
    elif fault == 4:
        msg.data = b""
    elif fault == 5:  # a JPEG whose frame header claims 65535 x 65535
        b = bytearray(data)
        sof = b.find(b"\xff\xc0")
        if sof > 0 and fmt == "jpeg":
            b[sof + 5 : sof + 9] = b"\xff\xff\xff\xff"
        msg.data = bytes(b)
    elif fault == 6:
        msg.format = "16UC1; compressedDepth png"
        msg.data = bytes(12) + data
    else:
        msg.data = data[:24] + data  # two headers
    return Case("field", f"compressed fault {fault}", msg)


def _camera_info(types: Any, rng: np.random.Generator, i: int) -> Case:
    w, h = int(rng.integers(16, 2000)), int(rng.integers(16, 2000))
    f = float(rng.uniform(100, 3000))
    k = [f, 0.0, w / 2, 0.0, f, h / 2, 0.0, 0.0, 1.0]
    p = [f, 0.0, w / 2, 0.0, 0.0, f, h / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg = types.CameraInfo(
        header=_header(types, rng, i),
        width=w,
        height=h,
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=k,
        r=r,
        p=p,
    )
    if rng.random() < 0.25:
        return Case("valid", "pinhole", msg)
    fault = int(rng.integers(0, 9))
    bad = float(rng.choice([float("nan"), float("inf"), -float("inf"), 0.0, -f]))
    if fault == 0:
        msg.k = [bad if j in (0, 4) else v for j, v in enumerate(k)]
    elif fault == 1:
        msg.p = [bad if j in (0, 5) else v for j, v in enumerate(p)]
    elif fault == 2:
        msg.d = [float(x) for x in rng.normal(0, 1, int(rng.integers(0, 20)))]
    elif fault == 3:
        msg.distortion_model = str(
            rng.choice(["", "equidistant", "rational_polynomial", "fisheye?", "x" * 300])
        )
    elif fault == 4:
        msg.width, msg.height = int(rng.choice([0, w])), 0
    elif fault == 5:
        msg.binning_x, msg.binning_y = int(rng.integers(2, 2**31)), int(rng.integers(0, 3))
    elif fault == 6:
        msg.roi.x_offset, msg.roi.width = int(rng.integers(0, 2**31)), int(rng.integers(0, 2**31))
    elif fault == 7:
        msg.p = [0.0] * 12
    else:
        msg.r = [float(x) for x in rng.normal(0, 5, 9)]
    return Case("field", f"camera_info fault {fault}", msg)


def _cloud(types: Any, rng: np.random.Generator, i: int) -> Case:
    n = int(rng.integers(1, 400))
    pts = rng.uniform(-40, 40, (n, 4)).astype(np.float32)
    names = ["x", "y", "z", "intensity"]
    fields = [types.PointField(name=nm, offset=4 * j, datatype=7, count=1) for j, nm in enumerate(names)]
    msg = types.PointCloud2(
        header=_header(types, rng, i),
        height=1,
        width=n,
        fields=fields,
        is_bigendian=False,
        point_step=16,
        row_step=16 * n,
        data=pts.tobytes(),
        is_dense=True,
    )
    if rng.random() < 0.25:
        return Case("valid", "xyzi", msg)
    fault = int(rng.integers(0, 12))
    if fault == 0:
        fields[int(rng.integers(0, 4))].offset = int(rng.integers(13, 2**31))
    elif fault == 1:
        fields[int(rng.integers(0, 4))].datatype = int(rng.choice([0, 9, 42, 255]))
    elif fault == 2:
        fields[0].count = int(rng.choice([0, 2, 1000]))
    elif fault == 3:
        msg.point_step = int(rng.integers(0, 16))
    elif fault == 4:
        msg.row_step = int(rng.integers(0, 16 * n))
    elif fault == 5:
        msg.data = pts.tobytes()[: int(rng.integers(0, 16 * n))]
    elif fault == 6:
        msg.height, msg.width = 2**31, 2**31
    elif fault == 7:
        fields[0].datatype = 2  # x declared uint8
    elif fault == 8:
        msg.fields = fields[:2]  # no z
    elif fault == 9:
        fields[1].name = "x"  # x twice
    elif fault == 10:
        msg.is_bigendian = True
    else:
        msg.fields = []
    return Case("field", f"cloud fault {fault}", msg)


_MAKERS = {"image": _image, "compressed": _compressed, "camera_info": _camera_info, "cloud": _cloud}


def _corrupt(raw: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    b = bytearray(raw)
    how = int(rng.integers(0, 5))
    if how == 0:
        return "cut", bytes(b[: int(rng.integers(1, len(b)))])
    if how == 1:
        for at in rng.integers(0, len(b), int(rng.integers(1, 8))):
            b[int(at)] = int(rng.integers(0, 256))
        return "bytes flipped", bytes(b)
    if how == 2 and len(b) >= 8:
        at = int(rng.integers(4, len(b) - 3)) & ~3
        b[at : at + 4] = int(rng.choice([2**31, 2**32 - 1, 0x7FFFFFF0])).to_bytes(4, "little")
        return "huge length", bytes(b)
    if how == 3:
        return "garbage", b"\x00\x01\x00\x00" + rng.integers(
            0, 256, int(rng.integers(0, 200)), np.uint8
        ).tobytes()
    # not b"": an empty payload stalls a reliable Fast DDS stream for good (nothing after it arrives,
    # defaults on both sides too); no ROS publisher can send one, rclpy/rclcpp always write a header
    return "one byte", b"\x00"


def cases(kind: str, count: int, seed: int, types: Any) -> Iterator[Case]:
    """``count`` reproducible cases for message kind ``kind`` (one of :data:`KINDS`)."""
    from rclpy.serialization import serialize_message

    rng = np.random.default_rng([seed, KINDS.index(kind)])
    make = _MAKERS[kind]
    for i in range(count):
        case = make(types, rng, i)
        if rng.random() < 0.25:  # a fifth to a quarter as corrupt CDR
            how, raw = _corrupt(bytes(serialize_message(case.payload)), rng)
            case = Case("cdr", how, raw)
        yield case


def publish(args: argparse.Namespace) -> int:
    import rclpy

    from perception_pkg.msgs import MessageFactory
    from perception_pkg.ros.qos import qos_profile

    rclpy.init()
    node = rclpy.create_node(f"fuzz_publisher_{os.getpid()}")
    types = MessageFactory.rclpy()
    pub = node.create_publisher(
        types.cls(MSG_TYPES[args.kind]), args.topic, qos_profile("reliable", args.depth)
    )
    deadline = time.monotonic() + 60
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.5)
    print("ready", flush=True)
    intents: Counter[str] = Counter()
    period = 1.0 / args.rate
    start = time.monotonic()
    for i, case in enumerate(cases(args.kind, args.count, args.seed, types)):
        delay = start + i * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        pub.publish(case.payload)
        intents[case.intent] += 1
    time.sleep(args.linger)
    print(json.dumps({"intents": dict(intents)}), flush=True)
    print(f"sent {sum(intents.values())}", flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def publisher_args(kind: str, topic: str, count: int, seed: int, rate: float = 400.0) -> list[str]:
    """``python`` arguments that run the fuzz publisher in a child process."""
    return ["-m", "perception_pkg.ros.fuzz", "publish", "--kind", kind, "--topic", topic, "--count",
            str(count), "--seed", str(seed), "--rate", str(rate)]  # fmt: skip


# the node each kind is sent to, its parameters, the input it arrives on and whether that is the main one
NODE_FOR = {
    "image": ("detection", {"image_topic": "/fuzz/image"}, "image", True),
    "compressed": ("detection", {"image_topic": "/fuzz/image/compressed", "compressed": True}, "image", True),
    "camera_info": ("detection", {"camera_info_topic": "/fuzz/camera_info"}, "camera_info", False),
    "cloud": ("cloud_filter", {"input_topic": "/fuzz/points"}, "cloud", True),
}
TOPIC_OF = {"image": "image_topic", "compressed": "image_topic", "camera_info": "camera_info_topic"}


@dataclass
class KindResult:
    kind: str
    sent: int
    intents: dict[str, int]
    counters: dict[str, int]  # received, processed, dropped, malformed (of this input), errors
    accounted: bool  # every message sent ended in exactly one counter
    node_alive: bool  # the node was up when the run ended, and exited 0 on SIGINT
    exit_code: int | None
    bad_lines: list[str]  # tracebacks / [ERROR] / aborts the node printed

    @property
    def ok(self) -> bool:
        return self.accounted and self.node_alive and self.exit_code == 0 and not self.bad_lines


def run_kind(kind: str, count: int, seed: int, workdir: str, *, rate: float = 400.0) -> KindResult:
    """Send ``count`` seeded cases of ``kind`` to its node (`perception run`, our DDS profile) from a
    publisher child on Fast DDS defaults, reliably (input depth 1000, so the middleware loses none
    while the node's executor takes them); then check that every message is counted once and the node
    survived."""
    import signal
    import subprocess
    from pathlib import Path

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor

    from perception_pkg.ros.traffic import child_env, diagnostic_values

    node_name, params, key, main = NODE_FOR[kind]
    topic = params.get("input_topic") or params.get(TOPIC_OF[kind])
    body = {
        **params,
        "backend": "onnxruntime",
        "threads": 1,
        "diagnostics_period_s": 0.25,
        "log_throttle_s": 30.0,
        "input_qos.depth": 1000,  # the most allowed: 2.5 s of backlog at 400 Hz, the executor takes them
    }
    if node_name == "cloud_filter":
        body = {k: v for k, v in body.items() if k not in ("backend", "threads")}
    lines = [f"{node_name}:", "  ros__parameters:"] + [f"    {k}: {json.dumps(v)}" for k, v in body.items()]
    params_file = Path(workdir) / f"fuzz_{kind}.yaml"
    params_file.write_text("\n".join(lines) + "\n")
    node_cmd = [sys.executable, "-m", "perception_pkg.cli.main", "run", "--nodes", node_name]
    node_proc = subprocess.Popen(
        [*node_cmd, "--params-file", str(params_file)],
        env=child_env("ours"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    context = rclpy.context.Context()
    rclpy.init(context=context)
    probe = rclpy.create_node(f"fuzz_probe_{os.getpid()}", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    last: list[dict[str, str]] = []

    def on_diag(msg: Any) -> None:
        got = diagnostic_values(msg, f"/{node_name}")
        if got is not None:
            last[:] = [got[2]]

    probe.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)

    def spin(seconds: float, until: Any = lambda: False) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if until():
                return True
            executor.spin_once(timeout_sec=0.05)
        return until()

    def counters() -> dict[str, int]:
        d = last[0] if last else {}
        if main:
            names = ("received", "processed", "dropped", f"malformed.{key}", "errors")
        else:
            names = (f"received.{key}", f"malformed.{key}", "errors")
        return {n.split(".")[0]: int(d.get(n, 0)) for n in names}

    intents: dict[str, int] = {}
    sent = 0
    try:
        if not spin(90, lambda: bool(last) or node_proc.poll() is not None) or node_proc.poll() is not None:
            out = node_proc.stdout.read() if node_proc.poll() is not None and node_proc.stdout else ""
            raise RuntimeError(f"the node did not start: {out}")
        pub = subprocess.Popen(
            [sys.executable, *publisher_args(kind, topic, count, seed, rate)],
            env=child_env("default"),
            stdout=subprocess.PIPE,
            text=True,
        )
        out, _ = pub.communicate(timeout=60 + 3 * count / rate)
        for line in out.splitlines():
            if line.startswith("{"):
                intents = json.loads(line)["intents"]
            elif line.startswith("sent "):
                sent = int(line.split()[1])

        def settled() -> bool:
            c = counters()
            if main:
                return (
                    c["received"] == sent
                    and sum(c[k] for k in ("processed", "dropped", "malformed", "errors")) == sent
                )
            return c["received"] == sent

        accounted = spin(60, settled)
        spin(0.5)
        alive = node_proc.poll() is None
    finally:
        node_proc.send_signal(signal.SIGINT)
        try:
            node_out, _ = node_proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            node_proc.kill()
            node_out, _ = node_proc.communicate()
        executor.shutdown()
        probe.destroy_node()
        rclpy.try_shutdown(context=context)
    bad = [
        ln
        for ln in node_out.splitlines()
        if any(t in ln for t in ("Traceback", "[ERROR]", "terminate called", "Segmentation"))
    ]
    return KindResult(kind, sent, intents, counters(), accounted, alive, node_proc.returncode, bad[:5])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("publish", help="publish seeded malformed messages of one kind, reliably")
    p.add_argument("--kind", choices=KINDS, required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate", type=float, default=400.0, help="messages per second")
    p.add_argument("--depth", type=int, default=5000, help="reliable keep-last depth (none may be lost)")
    p.add_argument("--linger", type=float, default=1.0)
    r = sub.add_parser("run", help="the fuzz run: every kind to its node; a table; exit 1 on a failure")
    r.add_argument("--count", type=int, default=2000, help="messages per kind")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--kinds", default=",".join(KINDS))
    r.add_argument("--rate", type=float, default=400.0)
    r.add_argument("--json", default="")
    args = ap.parse_args(argv)
    if args.cmd == "publish":
        return publish(args)
    return run(args)


def run(args: argparse.Namespace) -> int:
    import tempfile

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds.split(","):
            t = time.monotonic()
            r = run_kind(kind, args.count, args.seed, tmp, rate=args.rate)
            results.append(r)
            c = r.counters
            intents = ", ".join(f"{k} {v}" for k, v in sorted(r.intents.items()))
            counted = ", ".join(f"{k} {v}" for k, v in c.items())
            took = time.monotonic() - t
            print(
                f"{kind:<12} sent {r.sent:>5} ({intents}); {counted}; every message counted once: "
                f"{r.accounted}; node alive: {r.node_alive}, exit {r.exit_code}; {took:.0f} s",
                flush=True,
            )
            for line in r.bad_lines:
                print(f"    {line}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([r.__dict__ for r in results], f, indent=2)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
