"""``perception eval``: score a capability against simulator ground truth.

``eval detect`` runs a detector (a model card) over a ``perception sim`` dataset folder or a rosbag2
with ground-truth topics, or scores the detections a replay output bag already holds, and writes a
JSON report and plots (:mod:`perception_pkg.evaluation.detect`). ``eval pose`` lives in
``perception_pkg.cli.eval_pose_cmd`` and is wired here when that module is installed.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
from pathlib import Path
from typing import Any

POSE_MODULE = "perception_pkg.cli.eval_pose_cmd"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a model against simulator ground truth (detect, pose)",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    sub = p.add_subparsers(dest="eval_command", metavar="WHAT")
    sub.required = True
    _add_detect(sub)
    _add_pose(sub)


def _add_detect(sub: argparse._SubParsersAction) -> None:
    from perception_pkg.evaluation.detect import DEFAULT_MIN_HEIGHT_PX, DEFAULT_MIN_VISIBLE_PIXELS

    d = sub.add_parser(
        "detect",
        help="COCO box AP, TIDE breakdown and KITTI AP3D/AP_BEV of a detector",
        description=(
            "Run a detector over SOURCE (a 'perception sim' dataset folder, or a rosbag2 with "
            "/ground_truth/detections_2d) and score it: COCO box AP per class (pycocotools), the TIDE "
            "error breakdown at AP50, and for cars KITTI AP3D / AP_BEV at IoU 0.5 and 0.7 (40 recall "
            "points) when the detector gives 3D boxes. Ground truth too small or too hidden is "
            "ignored; the unfiltered figures are reported alongside. Writes OUT/detect_report.json "
            "and PNG plots; prints a summary."
        ),
    )
    d.add_argument(
        "source", type=Path, nargs="+",
        help="dataset folder(s) (with dataset.json) or rosbag2 folder(s); frames of several are pooled",
    )  # fmt: skip
    d.add_argument("--card", type=Path, default=None, help="detector model card (default: the shipped one)")
    d.add_argument("--backend", default="auto", help="engine backend: auto, onnxruntime, tensorrt, torch")
    d.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    d.add_argument("--out", type=Path, default=Path("out/eval_detect"), help="report folder")
    d.add_argument(
        "--images", default="clean", help="dataset image subset: clean, fog_s3, ... (dataset only)"
    )
    d.add_argument("--max-frames", type=int, default=None, help="evaluate the first N frames only")
    d.add_argument("--score-threshold", type=float, default=0.0, help="drop detections below this score")
    d.add_argument("--max-dets", type=int, default=100, help="detections per image scored (COCO: 100)")
    d.add_argument(
        "--min-height",
        type=float,
        default=DEFAULT_MIN_HEIGHT_PX,
        help="ignore GT whose modal box is lower than this (px; default %(default)s)",
    )
    d.add_argument(
        "--min-visible-pixels",
        type=float,
        default=DEFAULT_MIN_VISIBLE_PIXELS,
        help="ignore GT with fewer visible pixels (default %(default)s; bags do not carry the count)",
    )
    d.add_argument("--no-3d", action="store_true", help="skip the 3D solve and KITTI AP3D")
    d.add_argument("--no-plots", action="store_true", help="write the JSON report only")
    bag = d.add_argument_group("rosbag2 sources")
    bag.add_argument("--image-topic", default="/camera/image_raw")
    bag.add_argument("--info-topic", default="/camera/camera_info")
    bag.add_argument("--gt-topic", default="/ground_truth/detections_2d")
    bag.add_argument("--gt3d-topic", default="/ground_truth/detections_3d", help="'' for none")
    bag.add_argument(
        "--detections-topic",
        default=None,
        help="score this Detection2DArray topic of the bag (a replay output) instead of running a detector",
    )
    bag.add_argument("--detections3d-topic", default=None, help="camera-frame Detection3DArray with it")
    d.set_defaults(func=_run_detect)


def _add_pose(sub: argparse._SubParsersAction) -> None:
    help_text = "keypoint AP of a pose model (perception_pkg.cli.eval_pose_cmd)"
    try:
        module: Any = importlib.import_module(POSE_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != POSE_MODULE:
            raise  # the module exists but one of its imports is missing: that is a real error
        module = None
    pose = sub.add_parser("pose", help=help_text, description=help_text)
    if module is None:
        pose.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        pose.set_defaults(func=_pose_missing)
    else:
        module.add_arguments(pose)
        pose.set_defaults(func=module.run)


def _pose_missing(args: argparse.Namespace) -> int:
    print(
        f"perception eval pose: not available in this installation ({POSE_MODULE} is missing)",
        file=sys.stderr,
    )
    return 2


def _is_bag(path: Path) -> bool:
    return (path / "metadata.yaml").is_file() or path.suffix in (".mcap", ".db3")


def _run_detect(args: argparse.Namespace) -> int:
    from perception_pkg.evaluation.detect import (
        EvalSettings,
        RunStats,
        evaluate,
        load_dataset,
        read_bag,
        run_on_bag,
        run_on_dataset,
        summary_table,
        write_report,
    )

    sources: list[Path] = list(args.source)
    kinds = [_is_bag(src) for src in sources]
    for src, is_bag in zip(sources, kinds, strict=True):
        if not is_bag and not (src / "dataset.json").is_file():
            print(
                f"{src}: neither a dataset folder (dataset.json) nor a rosbag2 (metadata.yaml)",
                file=sys.stderr,
            )
            return 2
    if args.detections_topic and not all(kinds):
        print("--detections-topic needs rosbag2 sources", file=sys.stderr)
        return 2
    detector = None
    model: dict[str, Any] = {"source": f"bag topic {args.detections_topic}"}
    if not args.detections_topic:
        from perception_pkg.detection import Detector, default_detector_card

        card_path = args.card or default_detector_card()
        if not Path(card_path).is_file():
            print(f"{card_path}: no such model card (pass --card)", file=sys.stderr)
            return 2
        options: dict[str, Any] = {}
        if args.threads:
            options["threads"] = args.threads
        detector = Detector.from_card(
            card_path,
            backend=args.backend,
            score_threshold=args.score_threshold,
            lift_3d=not args.no_3d,
            **options,
        )
        model = {
            "card": str(card_path),
            "name": detector.card.name,
            "classes": list(detector.class_names),
            "backend": args.backend,
            "has_3d": bool(detector.has_3d and not args.no_3d),
            "score_threshold": args.score_threshold,
        }
    stats = RunStats()
    frames = []
    gt_names: list[str] = []
    srcs = []
    wall_s = 0.0
    for source, is_bag in zip(sources, kinds, strict=True):
        if is_bag:
            part = run_on_bag(
                detector,
                read_bag(
                    source,
                    image_topic=None if args.detections_topic else args.image_topic,
                    info_topic=args.info_topic,
                    gt2d_topic=args.gt_topic,
                    gt3d_topic=args.gt3d_topic or None,
                    det_topic=args.detections_topic,
                    det3d_topic=args.detections3d_topic,
                ),
                args.max_frames,
                stats,
            )
            names_here = sorted({c for f in part for c in f.gt.classes.tolist()})
            srcs.append({"kind": "rosbag2", "path": str(source), "gt_topic": args.gt_topic})
        else:
            data = load_dataset(source, args.images)
            part = run_on_dataset(detector, data, args.max_frames, stats)  # type: ignore[arg-type]
            names_here = list(data.class_names)
            srcs.append({"kind": "dataset", "path": str(source), "images": args.images})
        if len(sources) > 1:  # frame keys must stay unique across sources
            part = [dataclasses.replace(f, key=f"{source}/{f.key}") for f in part]
        frames.extend(part)
        wall_s += stats.wall_s
        gt_names.extend(n for n in names_here if n not in gt_names)
    stats.frames, stats.wall_s = len(frames), wall_s
    src = srcs[0] if len(srcs) == 1 else {"kind": "several", "sources": srcs}
    source = sources[0] if len(sources) == 1 else f"{len(sources)} sources"
    if not frames:
        print(f"{source}: no frames with ground truth", file=sys.stderr)
        return 2
    # score the classes both sides know; the rest is counted under counts.not_evaluated
    det_names = model.get("classes") or sorted({c for f in frames for c in f.pred.classes.tolist()})
    names = [n for n in gt_names if n in set(det_names)]
    if not names:
        print(f"no class in common: ground truth {gt_names}, detector {det_names}", file=sys.stderr)
        return 2
    settings = EvalSettings(
        min_height_px=args.min_height, min_visible_pixels=args.min_visible_pixels, max_dets=args.max_dets
    )
    report = evaluate(frames, names, settings)
    src["frames"] = len(frames)
    report = {
        "tool": "perception eval detect",
        "model": model,
        "source": src,
        **report,
        "run": stats.summary(),
    }
    written = write_report(report, args.out, plots=not args.no_plots)
    print(summary_table(report))
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0
