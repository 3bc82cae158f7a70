"""Host-side budget of the detection, pose, weather and completion nodes: p50/p99 per stage, host total
against inference.

One frame is what a node's worker does with its input: the pipeline's ``accept`` and ``run`` (the code
``ros/node_base.py:PipelineNode`` runs) and an rclpy ``publish`` of every output, on-demand outputs
(markers of 3D boxes, annotated images) left out as when nobody subscribes. Stages:

- detection (640x480 simulator frame, 12 objects at the node's 0.3 threshold, with its CameraInfo):
  ``convert`` (message -> BGR), ``preprocess``, ``inference``, ``decode``, ``lift_3d``, ``build_msgs``
  (Detection2DArray + Detection3DArray), ``publish``, ``other`` (the rest of the frame);
- pose (640x480 image with 5 person boxes in a Detection2DArray, the shipped top-down model): ``convert``,
  ``boxes`` (person boxes from the message), ``preprocess``, ``inference``, ``decode``, ``build_msgs``
  (PersonArray + skeleton MarkerArray), ``publish``, ``other`` (stamp matching and the rest);
- weather (640x480 simulator frame and its CameraInfo, ``mode: always``: classified and restored, the
  shipped restorer and classifier): ``convert``, ``preprocess`` and ``decode`` (both networks'),
  ``inference`` (both), ``build_msgs`` (restored Image + CameraInfo), ``publish``, ``other``;
- completion (the sample bag's first scan, ~125k points, and its 10 nearest ground-truth cars in the
  LiDAR frame): ``convert`` (PointCloud2 -> xyz), ``boxes``, ``extract`` (points in boxes), ``resample``
  (object frame + 1,024 points), ``inference`` (one batched call), ``inverse``, ``build_msgs``,
  ``publish``, ``other``.

``host`` = frame total - inference, per frame; the budget (issue 17) is host p50 <= 0.3 x inference p50.
Each node is measured twice: with 2 onnxruntime threads and no affinity, and pinned to one core
(``taskset -c 0``, 1 thread), the slow-core figure. With ``--before TREE`` the same measurements run for
that source tree too (``PYTHONPATH=TREE``, e.g. a ``git worktree`` of the commit before a change),
alternating before / after in rounds; figures are medians over rounds. The machines are shared and noisy:
quote the ratios, which are measured within one process.

    python benchmarks/bench_budget.py [--node detection|pose|weather|completion|all] [--frames 100]
                                      [--rounds 1] [--before /tmp/hp_before] [--json out.json]
    python benchmarks/bench_budget.py --worker --node detection --threads 2   # one measurement, JSON
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HW = (480, 640)
STAMP = 1_700_000_000_000_000_000
BOXES_5 = [
    [40, 100, 140, 420],
    [180, 80, 260, 330],
    [300, 150, 360, 300],
    [400, 60, 520, 470],
    [560, 200, 620, 380],
]
STAGES = {
    "detection": (
        "convert",
        "preprocess",
        "inference",
        "decode",
        "lift_3d",
        "build_msgs",
        "publish",
        "other",
    ),
    "pose": ("convert", "boxes", "preprocess", "inference", "decode", "build_msgs", "publish", "other"),
    "weather": ("convert", "preprocess", "inference", "decode", "build_msgs", "publish", "other"),
    "completion": (
        "convert",
        "boxes",
        "extract",
        "resample",
        "inference",
        "inverse",
        "build_msgs",
        "publish",
        "other",
    ),
}
CONFIGS = (("2 threads", 2, False), ("taskset -c 0", 1, True))


# --- one measurement (the worker) ------------------------------------------------------------------------


class _Rclpy:
    """An rclpy context and node with a publisher per pipeline output (what PipelineNode creates)."""

    def __init__(self, pipeline: Any, types: Any) -> None:
        import rclpy
        from rclpy.context import Context

        self.rclpy, self.ctx = rclpy, Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node("bench_budget", context=self.ctx)
        self.pubs = {
            p.key: self.node.create_publisher(types.cls(p.msgtype), f"/bench_budget/{p.key}", 10)
            for p in pipeline.outputs
        }

    def close(self) -> None:
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.ctx)


def _timed(frame: dict[str, float], stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            frame[stage] = frame.get(stage, 0.0) + time.perf_counter() - t0

    return wrapper


def _frame_loop(
    run_frame: Callable[[dict[str, float]], None], stages: tuple[str, ...], frames: int, warmup: int
) -> dict[str, Any]:
    per: dict[str, list[float]] = {s: [] for s in (*stages, "total", "host")}
    for i in range(warmup + frames):
        frame: dict[str, float] = {}
        t0 = time.perf_counter()
        run_frame(frame)
        total = time.perf_counter() - t0
        if i < warmup:
            continue
        frame["other"] = total - sum(frame.get(s, 0.0) for s in stages if s != "other")
        for s in stages:
            per[s].append(frame.get(s, 0.0))
        per["total"].append(total)
        per["host"].append(total - frame.get("inference", 0.0))
    return {
        k: {"p50": float(np.median(v)) * 1e3, "p99": float(np.percentile(v, 99)) * 1e3}
        for k, v in per.items()
    }


def _publish(frame: dict[str, float], pubs: dict[str, Any], outputs: list[tuple[str, Any]]) -> None:
    t0 = time.perf_counter()
    for key, msg in outputs:
        pubs[key].publish(msg)
    frame["publish"] = frame.get("publish", 0.0) + time.perf_counter() - t0


def _sim_frame() -> tuple[np.ndarray, Any]:
    from perception_pkg.sim import SceneConfig, generate_scene
    from perception_pkg.sim.bag import camera_model
    from perception_pkg.sim.render import render_frame

    scene = generate_scene(7, SceneConfig.with_sensors(width=HW[1], height=HW[0], azimuth_steps=300))
    return render_frame(scene, 3).image, camera_model(scene)


def measure_detection(threads: int, frames: int, warmup: int) -> dict[str, Any]:
    import perception_pkg.pipelines.detection as mod
    from perception_pkg.detection import load_detector, resolve_card
    from perception_pkg.msgs import MessageFactory, array_to_image, make_header, model_to_camera_info
    from perception_pkg.pipelines.detection import DetectionSettings

    detector = load_detector(
        resolve_card(""), backend="onnxruntime", score_threshold=0.3, threads=threads, where="bench_budget"
    )
    rgb, camera = _sim_frame()
    types = MessageFactory.rclpy()
    header = make_header(types, STAMP, camera.frame_id)
    image_msg = array_to_image(rgb, "rgb8", header, types)
    info = model_to_camera_info(camera, header, types)
    pipeline = mod.create(DetectionSettings(), types, live=True, detector=detector)
    wanted = lambda key: not pipeline.output(key).on_demand  # noqa: E731 - nobody subscribes to those
    ros = _Rclpy(pipeline, types)
    pipeline.accept("camera_info", info, 0.0)
    saved = {n: getattr(mod, n) for n in ("image_message_to_bgr", "detection2d_array", "detection3d_array")}
    current: dict[str, float] = {}
    try:
        mod.image_message_to_bgr = _timed(current, "convert", saved["image_message_to_bgr"])
        mod.detection2d_array = _timed(current, "build_msgs", saved["detection2d_array"])
        mod.detection3d_array = _timed(current, "build_msgs", saved["detection3d_array"])

        def run_frame(frame: dict[str, float]) -> None:
            current.clear()
            for job in pipeline.accept("image", image_msg, time.monotonic()):
                _publish(current, ros.pubs, pipeline.run(job, wanted))
            current.update({k: v for k, v in pipeline.last_timings.items() if k != "convert"})
            frame.update(current)

        figures = _frame_loop(run_frame, STAGES["detection"], frames, warmup)
    finally:
        for n, fn in saved.items():
            setattr(mod, n, fn)
        ros.close()
    return {
        "objects": pipeline.last_detections,
        "camera_info": pipeline.camera_info_status,
        "engine": detector.runner.engine.describe(),
        **figures,
    }


def measure_pose(threads: int, frames: int, warmup: int) -> dict[str, Any]:
    from perception_pkg.cards import load_card
    from perception_pkg.msgs import MessageFactory, array_to_image, make_header
    from perception_pkg.pipelines.pose import PoseFrames, PosePipeline, PoseSettings
    from perception_pkg.pose import PoseEstimator, default_pose_card

    est = PoseEstimator(load_card(default_pose_card()), backend="onnxruntime", threads=threads)
    types = MessageFactory.rclpy()
    settings = PoseSettings()
    header = make_header(types, STAMP, "camera_optical")
    rgb = np.random.default_rng(0).integers(0, 256, (*HW, 3), dtype=np.uint8)
    image_msg = array_to_image(rgb, "rgb8", header, types)
    det_msg = _person_boxes(types, header)
    frames_proc = PoseFrames(est, settings, types)
    pipeline = PosePipeline(settings, types, frames_proc)
    wanted = lambda key: not pipeline.output(key).on_demand  # noqa: E731
    ros = _Rclpy(pipeline, types)
    current: dict[str, float] = {}
    names = {"conversion": "convert", "message_build": "build_msgs"}
    people = [0]

    def recorded(image: Any, detections: Any = None) -> Any:
        out = frames_proc(image, detections)
        current.update({names.get(k, k): v for k, v in out.timings.items()})
        people[0] = len(out.result)
        return out

    pipeline.frames = recorded  # type: ignore[assignment]  # the pipeline calls self.frames(msg, partner)

    def run_frame(frame: dict[str, float]) -> None:
        current.clear()
        now = time.monotonic()
        jobs = pipeline.accept("image", image_msg, now) + pipeline.accept("detections", det_msg, now)
        for job in jobs:
            _publish(current, ros.pubs, pipeline.run(job, wanted))
        frame.update(current)

    try:
        figures = _frame_loop(run_frame, STAGES["pose"], frames, warmup)
    finally:
        ros.close()
    return {"objects": people[0], "engine": est.runner.engine.describe(), **figures}


def _time_runner(runner: Any, current: dict[str, float]) -> None:
    """Split a ModelRunner's calls into the preprocess / inference / decode stages (instance attributes
    shadow its methods; ``__call__`` looks them up on the instance)."""
    # the output NaN check is host work (timed with decode) where the tree splits it from the engine call
    split = hasattr(runner, "run_engine")
    engine = (("inference", "run_engine"), ("decode", "check")) if split else (("inference", "infer"),)
    for stage, name in (("preprocess", "preprocess"), *engine, ("decode", "decode")):
        setattr(runner, name, _timed(current, stage, getattr(runner, name)))


def measure_weather(threads: int, frames: int, warmup: int) -> dict[str, Any]:
    import perception_pkg.pipelines.weather as mod
    from perception_pkg.msgs import MessageFactory, array_to_image, make_header, model_to_camera_info
    from perception_pkg.pipelines.weather import WeatherSettings

    settings = WeatherSettings(mode="always", backend="onnxruntime", threads=threads)
    types = MessageFactory.rclpy()
    pipeline = mod.create(settings, types, live=True)
    rgb, camera = _sim_frame()
    header = make_header(types, STAMP, camera.frame_id)
    image_msg = array_to_image(rgb, "rgb8", header, types)
    pipeline.accept("camera_info", model_to_camera_info(camera, header, types), 0.0)
    ros = _Rclpy(pipeline, types)
    current: dict[str, float] = {}
    core = pipeline.restorer
    for runner in (core.restorer.runner, core.classifier.runner if core.classifier else None):
        if runner is not None:
            _time_runner(runner, current)
    saved = {n: getattr(mod, n) for n in ("image_message_to_bgr", "array_to_image", "model_to_camera_info")}
    try:
        mod.image_message_to_bgr = _timed(current, "convert", saved["image_message_to_bgr"])
        mod.array_to_image = _timed(current, "build_msgs", saved["array_to_image"])
        mod.model_to_camera_info = _timed(current, "build_msgs", saved["model_to_camera_info"])

        def run_frame(frame: dict[str, float]) -> None:
            current.clear()
            for job in pipeline.accept("image", image_msg, time.monotonic()):
                _publish(current, ros.pubs, pipeline.run(job))
            frame.update(current)

        figures = _frame_loop(run_frame, STAGES["weather"], frames, warmup)
    finally:
        for n, fn in saved.items():
            setattr(mod, n, fn)
        ros.close()
    return {"objects": pipeline.restored, "engine": pipeline.describe(), **figures}


def measure_completion(threads: int, frames: int, warmup: int) -> dict[str, Any]:
    import perception_pkg.pipelines.completion as mod
    from perception_pkg.bag import get_typestore, open_bag
    from perception_pkg.completion import Completer, resolve_card
    from perception_pkg.msgs import MessageFactory, stamp_to_ns
    from perception_pkg.pipelines.base import Job
    from perception_pkg.pipelines.completion import CompletionSettings
    from perception_pkg.sim.generate import ensure_sample_bag

    store = get_typestore()
    want = ("/lidar/points", "/ground_truth/detections_3d_lidar")
    found: dict[int, dict[str, Any]] = {}
    with open_bag(ensure_sample_bag(), store) as reader:
        for m in reader.messages():
            if m.topic in want:
                msg = reader.deserialize(m)
                found.setdefault(stamp_to_ns(msg.header), {})[m.topic] = msg
                if any(len(v) == 2 for v in found.values()):
                    break
    first = next(v for v in found.values() if len(v) == 2)
    # rclpy messages, as the node has them (the converters read either kind)
    types = MessageFactory.rclpy()
    from rclpy.serialization import deserialize_message

    def to_rclpy(msg: Any, msgtype: str) -> Any:
        return deserialize_message(bytes(store.serialize_cdr(msg, msgtype)), types.cls(msgtype))

    cloud = to_rclpy(first[want[0]], "sensor_msgs/msg/PointCloud2")
    det = to_rclpy(first[want[1]], "vision_msgs/msg/Detection3DArray")
    cars = [d for d in det.detections if d.results[0].hypothesis.class_id == "car"]
    cars.sort(key=lambda d: np.hypot(d.bbox.center.position.x, d.bbox.center.position.y))
    boxes = types.Detection3DArray(header=det.header, detections=cars[:10])
    completer = Completer.from_card(resolve_card(None), "onnxruntime", threads)
    settings = CompletionSettings(boxes_topic=want[1], tf_topic="")
    pipeline = mod.create(settings, types, live=True, completer=completer)
    wanted = lambda key: not pipeline.output(key).on_demand  # noqa: E731
    ros = _Rclpy(pipeline, types)
    current: dict[str, float] = {}
    names = ("pointcloud_to_xyz", "detection3d_array_to_boxes", "structured_to_pointcloud")
    saved = {n: getattr(mod, n) for n in names}
    stages = dict(zip(names, ("convert", "boxes", "build_msgs"), strict=True))
    try:
        for n in names:
            setattr(mod, n, _timed(current, stages[n], saved[n]))
        job = Job(cloud, boxes)

        def run_frame(frame: dict[str, float]) -> None:
            current.clear()
            _publish(current, ros.pubs, pipeline.run(job, wanted))
            t = pipeline.last_timings
            current.update(
                extract=t.get("extract", 0.0),
                resample=t.get("resample", 0.0),
                inference=t.get("infer", 0.0),
                inverse=t.get("inverse", 0.0),
            )
            frame.update(current)

        figures = _frame_loop(run_frame, STAGES["completion"], frames, warmup)
    finally:
        for n, fn in saved.items():
            setattr(mod, n, fn)
        ros.close()
    return {"objects": pipeline.last_objects, "engine": completer.describe(), **figures}


def _person_boxes(types: Any, header: Any) -> Any:
    f = types
    dets = []
    for x0, y0, x1, y1 in BOXES_5:
        hyp = f(
            "vision_msgs/msg/ObjectHypothesisWithPose",
            hypothesis=f("vision_msgs/msg/ObjectHypothesis", class_id="person", score=0.9),
        )
        centre = f("vision_msgs/msg/Point2D", x=(x0 + x1) / 2 - 0.5, y=(y0 + y1) / 2 - 0.5)
        bbox = f(
            "vision_msgs/msg/BoundingBox2D",
            center=f("vision_msgs/msg/Pose2D", position=centre),
            size_x=float(x1 - x0),
            size_y=float(y1 - y0),
        )
        dets.append(f("vision_msgs/msg/Detection2D", header=header, results=[hyp], bbox=bbox))
    return f("vision_msgs/msg/Detection2DArray", header=header, detections=dets)


# --- the driver ------------------------------------------------------------------------------------------


def _run_worker(tree: Path | None, node: str, threads: int, pinned: bool, frames: int) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--node", node]
    cmd += ["--threads", str(threads), "--frames", str(frames)]
    if pinned:
        if shutil.which("taskset"):
            cmd = ["taskset", "-c", "0", *cmd]
        else:
            cmd += ["--cpu", "0"]
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench_budget worker failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, dict) and "p50" in value:
            out[key] = {q: float(np.median([r[key][q] for r in runs])) for q in ("p50", "p99")}
    out["ratio"] = float(np.median([r["host"]["p50"] / r["inference"]["p50"] for r in runs]))
    out["ratio_sum_of_stage_p50s"] = float(
        np.median([sum(r[s]["p50"] for s in r["stages"]) / r["inference"]["p50"] for r in runs])
    )
    out["rounds"] = len(runs)
    return out


def _print_table(node: str, results: dict[tuple[str, str], dict[str, Any]], trees: list[str]) -> None:
    cols = [(c[0], t) for c in CONFIGS for t in trees]
    any_result = next(iter(results.values()))
    what = {
        "detection": "12 objects expected",
        "pose": "5 people expected",
        "weather": "frames restored",
        "completion": "10 cars expected",
    }[node]
    print(f"\n{node} node, 640x480, {any_result['objects']} objects ({what})")
    print("p50 / p99 ms per stage, then stage p50 / inference p50; host total = frame - inference, per frame")
    print(f"{'':<12}" + "".join(f"{(c + (' ' + t if t else '')):>26}" for c, t in cols))
    for stage in (*STAGES[node], "host", "inference", "total"):
        row = f"{('host total' if stage == 'host' else stage):<12}"
        for c, t in cols:
            r = results[(c, t)]
            v, inf = r[stage], r["inference"]["p50"]
            share = f"{v['p50'] / inf:5.2f}x" if stage not in ("inference", "total") else "      "
            row += f"{v['p50']:>9.3f} /{v['p99']:>8.3f} {share}"
        print(row)
    # on a busy machine most frames catch a preemption in some stage, so the per-frame host p50 exceeds
    # the sum of the stage p50s; that sum is the steadier estimate of the host's own cost
    row = f"{'sum of p50s':<12}"
    for c, t in cols:
        r = results[(c, t)]
        host = sum(r[s]["p50"] for s in STAGES[node] if s != "inference")
        row += f"{host:>9.3f} {'':>9}{host / r['inference']['p50']:5.2f}x"
    print(row)
    verdicts = []
    for k in cols:
        ratio = results[k]["ratio"]
        verdicts.append(
            f"{'host/inference ' + format(ratio, '.2f') + (' ok' if ratio <= 0.3 else ' >0.3'):>26}"
        )
    print(f"{'budget':<12}" + "".join(verdicts))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--node", choices=[*STAGES, "all"], default="all")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=1, help="repeat every measurement, alternating trees")
    ap.add_argument("--before", type=Path, default=None, help="also measure this source tree (PYTHONPATH)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        if args.cpu is not None:
            os.sched_setaffinity(0, {args.cpu})
        from perception_pkg.ros.dds import use_large_message_profile

        use_large_message_profile()
        fn = {
            "detection": measure_detection,
            "pose": measure_pose,
            "weather": measure_weather,
            "completion": measure_completion,
        }[args.node]
        out = fn(args.threads, args.frames, warmup=10)
        out["stages"] = [s for s in STAGES[args.node] if s != "inference"]
        out["threads"], out["cpus"] = args.threads, sorted(os.sched_getaffinity(0))
        out["package"] = str(Path(sys.modules["perception_pkg"].__file__).parent)
        print(json.dumps(out))
        return 0

    nodes = list(STAGES) if args.node == "all" else [args.node]
    trees: list[tuple[str, Path | None]] = [("after", None)]
    if args.before is not None:
        trees = [("before", args.before.resolve()), ("after", Path(__file__).resolve().parents[1])]
    labels = [t for t, _ in trees] if args.before is not None else [""]
    report: dict[str, Any] = {}
    for node in nodes:
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for _ in range(args.rounds):
            for config, threads, pinned in CONFIGS:
                for (_, tree), shown in zip(trees, labels, strict=True):
                    runs.setdefault((config, shown), []).append(
                        _run_worker(tree, node, threads, pinned, args.frames)
                    )
        results = {k: _median_runs(v) for k, v in runs.items()}
        _print_table(node, results, labels)
        report[node] = {f"{c} {t}".strip(): r for (c, t), r in results.items()}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
