"""Synthetic sensor traffic across processes, for the transport and overload benchmarks and their tests.

A *publisher* child (``python -m perception_pkg.ros.traffic publish ...``) sends camera frames or point
clouds at a fixed rate. Every message is stamped with the wall clock right before ``publish()`` (or,
``--stamp capture``, at its scheduled time, as a camera stamps at exposure), so a receiver on the
same host reads its end-to-end latency as ``time.time_ns() - stamp``, and carries a
deterministic payload (a seeded pattern with the stamp written into it)
so the receiver can check that it arrived intact, byte for byte (:class:`Payload`).

The child runs on Fast DDS defaults unless asked for our profile (``--profile ours``), because the real
publishers of a robot (camera and LiDAR drivers) do not use our profile. It prints ``ready`` once a
subscriber is matched and ``sent N`` when it is done.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from perception_pkg.ros.dds import PROFILE_VARS, use_large_message_profile

CLOUD_POINT_STEP = 16  # x, y, z, intensity float32
_SEED = 20240611


@dataclass(frozen=True)
class Shape:
    """What to send: an rgb8 image of ``width`` x ``height`` or a cloud of ``points`` points."""

    kind: str  # "image" | "cloud"
    width: int = 0
    height: int = 0
    points: int = 0

    @classmethod
    def parse(cls, text: str) -> Shape:
        """``1920x1080`` (an rgb8 image) or ``1000000pts`` / ``1Mpts`` (a cloud)."""
        text = text.strip().lower()
        if text.endswith("pts"):
            n = text[:-3]
            scale = 1_000_000 if n.endswith("m") else 1_000 if n.endswith("k") else 1
            return cls("cloud", points=int(float(n.rstrip("mk")) * scale))
        w, h = text.split("x")
        return cls("image", width=int(w), height=int(h))

    @property
    def nbytes(self) -> int:
        return self.width * self.height * 3 if self.kind == "image" else self.points * CLOUD_POINT_STEP

    def __str__(self) -> str:
        if self.kind == "image":
            return f"{self.width}x{self.height} rgb8"
        return f"{self.points} pts"


class Payload:
    """The deterministic content of every message of one shape, with its stamp written in.

    Images: seeded random bytes, the stamp in the first and last eight bytes. Clouds: seeded finite
    points (x, y, z in [-50, 50] m) so a filter keeps them, the stamp's low and high 32 bits in the
    intensity of the first two points (x, y and z stay untouched)."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        rng = np.random.default_rng(_SEED)
        if shape.kind == "image":
            self.base = rng.integers(0, 256, shape.nbytes, dtype=np.uint8)
            self._slots = [(0, 8), (shape.nbytes - 8, shape.nbytes)]
        else:
            pts = np.empty((shape.points, 4), np.float32)
            pts[:, :3] = rng.uniform(-50, 50, (shape.points, 3))
            pts[:, 3] = rng.random(shape.points, dtype=np.float32)
            self.base = pts.view(np.uint8).reshape(-1)
            self._slots = [(12, 16), (12 + CLOUD_POINT_STEP, 16 + CLOUD_POINT_STEP)]

    def _stamp_bytes(self, stamp_ns: int) -> list[bytes]:
        raw = int(stamp_ns).to_bytes(8, "little")
        return [raw] if self._slots[0][1] - self._slots[0][0] == 8 else [raw[:4], raw[4:]]

    def write_stamp(self, buf: Any, stamp_ns: int) -> None:
        """Write the stamp into ``buf`` (a writable buffer of the payload's size) in place."""
        mv = memoryview(buf).cast("B")
        parts = self._stamp_bytes(stamp_ns)
        if len(parts) == 1:  # image: the same eight bytes at both ends
            parts = parts * 2
        for (a, b), part in zip(self._slots, parts, strict=True):
            mv[a:b] = part

    def ok(self, data: Any, stamp_ns: int, *, bgr: bool = False) -> bool:
        """True when ``data`` is the payload sent with ``stamp_ns``, byte for byte (``bgr``: an rgb8
        image payload that came back as bgr8, e.g. a node's annotated image with nothing drawn)."""
        got = np.frombuffer(memoryview(data).cast("B"), np.uint8)
        if got.size != self.base.size:
            return False
        expected = self.base.copy()
        self.write_stamp(expected, stamp_ns)
        if bgr:
            expected = expected.reshape(self.shape.height, self.shape.width, 3)[..., ::-1].reshape(-1)
        return bool(np.array_equal(got, expected))


def make_message(shape: Shape, types: Any, frame_id: str = "bench") -> Any:
    """An rclpy Image or PointCloud2 of ``shape`` with the base payload (stamp it before sending)."""
    from perception_pkg.msgs import make_header

    header = make_header(types, 0, frame_id)
    if shape.kind == "image":
        msg = types.Image(
            header=header, height=shape.height, width=shape.width, encoding="rgb8", step=shape.width * 3
        )
    else:
        fields = [
            types.PointField(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("xyz")
        ] + [types.PointField(name="intensity", offset=12, datatype=7, count=1)]
        msg = types.PointCloud2(
            header=header,
            height=1,
            width=shape.points,
            fields=fields,
            point_step=CLOUD_POINT_STEP,
            row_step=CLOUD_POINT_STEP * shape.points,
            is_dense=True,
        )
    return msg


def camera_info_for(shape: Shape, types: Any, frame_id: str = "bench") -> Any:
    """A pinhole CameraInfo (fx = fy = the image width, centred) for images of ``shape``."""
    from perception_pkg.msgs import make_header

    f, cx, cy = float(shape.width), shape.width / 2, shape.height / 2
    return types.CameraInfo(
        header=make_header(types, 0, frame_id),
        height=shape.height,
        width=shape.width,
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=[f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0],
        r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p=[f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0],
    )


def set_stamp(msg: Any, stamp_ns: int) -> None:
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)


def stamp_of(msg: Any) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def child_env(profile: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a child: ``ours`` = our Fast DDS profile, ``default`` = Fast DDS defaults, or a
    path to another profile."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in PROFILE_VARS}
    if profile == "ours":
        use_large_message_profile(env)
    elif profile != "default":
        for var in PROFILE_VARS:
            env[var] = profile
    return env


def publisher_args(
    topic: str,
    shape: Shape,
    *,
    rate: float,
    count: int = 0,
    seconds: float = 0.0,
    reliability: str = "reliable",
    depth: int = 5,
    wait_for: int = 1,
    camera_info_topic: str = "",
    stamp: str = "publish",
) -> list[str]:
    """``python`` arguments that run :func:`publish` in a child process."""
    spec = f"{shape.width}x{shape.height}" if shape.kind == "image" else f"{shape.points}pts"
    return [
        "-m",
        "perception_pkg.ros.traffic",
        "publish",
        "--topic",
        topic,
        "--shape",
        spec,
        "--rate",
        str(rate),
        "--count",
        str(count),
        "--seconds",
        str(seconds),
        "--reliability",
        reliability,
        "--depth",
        str(depth),
        "--wait-for",
        str(wait_for),
        "--camera-info-topic",
        camera_info_topic,
        "--stamp",
        stamp,
    ]


def _schedule(rate: float, count: int, seconds: float) -> Iterator[float]:
    """Send times (monotonic) at ``rate`` Hz until ``count`` messages or ``seconds`` have gone."""
    period = 1.0 / rate
    start = time.monotonic()
    i = 0
    while (count <= 0 or i < count) and (seconds <= 0 or i * period < seconds):
        yield start + i * period
        i += 1


def publish(args: argparse.Namespace) -> int:
    import signal

    import rclpy
    from rclpy.qos import QoSProfile
    from rclpy.signals import SignalHandlerOptions

    from perception_pkg.msgs import MessageFactory
    from perception_pkg.ros.qos import qos_profile

    shape = Shape.parse(args.shape)
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    stop: list[bool] = []
    for sig in (signal.SIGINT, signal.SIGTERM):  # stop sending, report, leave cleanly
        signal.signal(sig, lambda *_: stop.append(True))
    node = rclpy.create_node(f"traffic_publisher_{os.getpid()}")
    types = MessageFactory.rclpy()
    qos: QoSProfile = qos_profile(args.reliability, args.depth)
    cls = types.Image if shape.kind == "image" else types.PointCloud2
    pub = node.create_publisher(cls, args.topic, qos)
    info_pub, info = None, None
    if args.camera_info_topic and shape.kind == "image":  # as a camera driver: the image, then its info
        info_pub = node.create_publisher(types.CameraInfo, args.camera_info_topic, qos)
        info = camera_info_for(shape, types)
    msg = make_message(shape, types)
    payload = Payload(shape)
    msg.data = payload.base.tobytes()  # rclpy keeps it as an array.array: stamps are written in place
    deadline = time.monotonic() + 60
    while pub.get_subscription_count() < args.wait_for and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    # the subscriber can see the match a little after we do; a first message sent in between is lost
    time.sleep(args.settle)
    sent, last_publish, last_stamp = 0, 0, 0
    late: list[float] = []
    wall0, mono0 = time.time_ns(), time.monotonic()
    print("ready", flush=True)
    try:
        for at in _schedule(args.rate, args.count, args.seconds):
            if stop:
                break
            delay = at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            # capture: stamped like a camera, at the frame's scheduled time; publish: right before publish()
            stamp = wall0 + int((at - mono0) * 1e9) if args.stamp == "capture" else time.time_ns()
            payload.write_stamp(msg.data, stamp)
            set_stamp(msg, stamp)
            pub.publish(msg)
            if info_pub is not None:
                set_stamp(info, stamp)
                info_pub.publish(info)
            late.append(time.monotonic() - at)
            last_publish, last_stamp = time.time_ns(), stamp
            sent += 1
        if not stop:
            time.sleep(args.linger)
    finally:
        if late:
            p50, p99 = np.percentile(late, [50, 99]) * 1e3
            print(f"lateness p50 {p50:.2f} ms p99 {p99:.2f} ms", flush=True)
            print(f"last_sent_ns {last_publish}", flush=True)  # wall clock of the last publish()
            print(f"last_stamp_ns {last_stamp}", flush=True)  # header stamp of the last message
        print(f"sent {sent}", flush=True)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


class Arrivals:
    """Receive times (wall clock, ns) and header stamps of the messages of one topic; use the instance
    as a subscription callback. The receive time is the middleware's (``MessageInfo.received_timestamp``:
    when the sample reached this process's DDS reader), so this process's own Python scheduling does not
    count; the wall clock at the callback stands in where the rmw gives none. Appends are atomic under
    the GIL, so a spinning thread may fill it while another reads."""

    def __init__(self) -> None:
        self.received_ns: list[int] = []
        self.stamps_ns: list[int] = []

    def __call__(self, msg: Any, info: Any) -> None:
        received = info.get("received_timestamp", 0) if isinstance(info, dict) else 0
        self.received_ns.append(received if received > 0 else time.time_ns())
        self.stamps_ns.append(stamp_of(msg))

    def __len__(self) -> int:
        return len(self.received_ns)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        n = min(len(self.received_ns), len(self.stamps_ns))
        return (
            np.asarray(self.received_ns[:n], dtype=np.int64),
            np.asarray(self.stamps_ns[:n], dtype=np.int64),
        )


@dataclass
class Window:
    """Latency and gaps of the outputs that arrived in one time window."""

    start_s: float  # window start, seconds since the first send
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    longest_gap_ms: float  # longest time between consecutive arrivals (within the run)


def windows(
    received_ns: np.ndarray, stamps_ns: np.ndarray, t0_ns: int, t1_ns: int, width_s: float
) -> list[Window]:
    """Per-window latency (arrival - stamp) percentiles and the longest gap between arrivals, for
    arrivals between ``t0_ns`` and ``t1_ns`` (wall clock). A gap is charged to the window it ends in;
    the first is measured from ``t0_ns``."""
    keep = (received_ns >= t0_ns) & (received_ns <= t1_ns)
    rec, lat = received_ns[keep], (received_ns - stamps_ns)[keep] / 1e6
    gaps = np.diff(np.concatenate([[t0_ns], rec])) / 1e6 if rec.size else np.zeros(0)
    out = []
    width_ns = int(width_s * 1e9)
    for start in range(int(t0_ns), int(t1_ns), width_ns):
        sel = (rec >= start) & (rec < start + width_ns)
        n = int(sel.sum())
        pct = np.percentile(lat[sel], [50, 99]) if n else (float("nan"), float("nan"))
        out.append(
            Window(
                start_s=(start - t0_ns) / 1e9,
                count=n,
                p50_ms=float(pct[0]),
                p99_ms=float(pct[1]),
                max_ms=float(lat[sel].max()) if n else float("nan"),
                longest_gap_ms=float(gaps[sel].max()) if n else width_s * 1e3,
            )
        )
    return out


def longest_gap_ms(received_ns: np.ndarray, t0_ns: int, t1_ns: int) -> float:
    """The longest time without an arrival between ``t0_ns`` and ``t1_ns`` (both ends included)."""
    rec = np.sort(received_ns[(received_ns >= t0_ns) & (received_ns <= t1_ns)])
    edges = np.concatenate([[t0_ns], rec, [t1_ns]])
    return float(np.diff(edges).max() / 1e6)


def diagnostic_values(msg: Any, name_suffix: str) -> tuple[int, str, dict[str, str]] | None:
    """(level, message, key/values) of the status in a DiagnosticArray whose name ends with
    ``name_suffix``, or None."""
    for st in msg.status:
        if st.name.endswith(name_suffix):
            level = st.level if isinstance(st.level, int) else int.from_bytes(st.level, "little")
            return level, st.message, {kv.key: kv.value for kv in st.values}
    return None


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (Linux), NaN when it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def subscribe(args: argparse.Namespace) -> int:
    """Receive ``--count`` messages (or until ``--seconds``), check each payload, write a JSON summary:
    latency (receive wall clock - stamp) per message and how many arrived intact."""
    import json
    import signal

    import rclpy
    from rclpy.signals import SignalHandlerOptions

    from perception_pkg.msgs import MessageFactory
    from perception_pkg.ros.qos import qos_profile

    shape = Shape.parse(args.shape)
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):  # stop receiving and write the summary
        signal.signal(sig, lambda *_: stop.append(True))
    node = rclpy.create_node(f"traffic_subscriber_{os.getpid()}")
    types = MessageFactory.rclpy()
    cls = types.Image if shape.kind == "image" else types.PointCloud2
    payload = Payload(shape)
    latency_ms: list[float] = []
    intact = 0

    def on_msg(msg: Any) -> None:
        nonlocal intact
        latency_ms.append((time.time_ns() - stamp_of(msg)) / 1e6)
        intact += payload.ok(msg.data, stamp_of(msg), bgr=args.bgr)

    node.create_subscription(cls, args.topic, on_msg, qos_profile(args.reliability, args.depth))
    deadline = time.monotonic() + 30
    while args.wait_for_publisher and node.count_publishers(args.topic) == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    print("ready", flush=True)
    deadline = time.monotonic() + args.seconds
    while len(latency_ms) < args.count and time.monotonic() < deadline and not stop:
        rclpy.spin_once(node, timeout_sec=0.05)
    with open(args.out, "w") as f:
        json.dump({"received": len(latency_ms), "intact": intact, "latency_ms": latency_ms}, f)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("publish", help="publish stamped frames at a rate")
    p.add_argument("--topic", required=True)
    p.add_argument("--shape", required=True, help="WxH (rgb8 image) or Npts (cloud)")
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--count", type=int, default=0, help="stop after this many (0: no limit)")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0: no limit)")
    p.add_argument("--reliability", choices=("reliable", "best_effort"), default="reliable")
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--wait-for", type=int, default=1, help="matched subscriptions to wait for")
    p.add_argument("--settle", type=float, default=0.5, help="seconds between the match and the first")
    p.add_argument("--linger", type=float, default=1.0, help="seconds to stay up after the last one")
    p.add_argument("--camera-info-topic", default="", help="also publish a CameraInfo after each image")
    p.add_argument(
        "--stamp",
        choices=("publish", "capture"),
        default="publish",
        help="header stamp: the wall clock right before publish(), or the frame's scheduled time (a camera)",
    )
    s = sub.add_parser("subscribe", help="receive stamped frames, check them, write a JSON summary")
    s.add_argument("--topic", required=True)
    s.add_argument("--shape", required=True)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--seconds", type=float, default=60.0)
    s.add_argument("--reliability", choices=("reliable", "best_effort"), default="best_effort")
    s.add_argument("--depth", type=int, default=1)
    s.add_argument("--out", required=True)
    s.add_argument("--bgr", action="store_true", help="rgb8 payloads expected back as bgr8")
    s.add_argument("--wait-for-publisher", action="store_true", help="say ready once a publisher is seen")
    args = ap.parse_args(argv)
    return publish(args) if args.cmd == "publish" else subscribe(args)


if __name__ == "__main__":
    sys.exit(main())
