"""``perception eval``: score a capability against simulator ground truth.

``eval detect`` runs a detector (a model card) over a ``perception sim`` dataset folder or a rosbag2
with ground-truth topics, or scores the detections a replay output bag already holds, and writes a
JSON report and plots (:func:`perception_pkg.evaluation.run.run_detect_eval`). ``eval pose`` lives in
``perception_pkg.cli.eval_pose_cmd`` and is wired here when that module is installed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

POSE_MODULE = "perception_pkg.cli.eval_pose_cmd"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a model against ground truth (detect, pose, completion, weather)",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    sub = p.add_subparsers(dest="eval_command", metavar="WHAT")
    sub.required = True
    _add_detect(sub)
    _add_pose(sub)
    _add_module(sub, "completion")
    _add_module(sub, "weather")


def _add_detect(sub: argparse._SubParsersAction) -> None:
    from perception_pkg.evaluation.detect import DEFAULT_MIN_HEIGHT_PX, DEFAULT_MIN_VISIBLE_PIXELS
    from perception_pkg.evaluation.sources import TOPIC_GT2D, TOPIC_GT3D, TOPIC_IMAGE, TOPIC_INFO

    d = sub.add_parser(
        "detect",
        help="COCO box AP, TIDE breakdown and KITTI AP3D/AP_BEV of a detector",
        description=(
            "Run a detector over SOURCE (a 'perception sim' dataset folder, a rosbag2 or ROS 1 bag with "
            "/ground_truth/detections_2d, or a folder of images with a COCO instances json) and score "
            "it: COCO box AP per class (pycocotools), the TIDE "
            "error breakdown at AP50, and for cars KITTI AP3D / AP_BEV at IoU 0.5 and 0.7 (40 recall "
            "points) when the detector gives 3D boxes. Ground truth too small or too hidden is "
            "ignored; the unfiltered figures are reported alongside. Writes OUT/detect_report.json "
            "and PNG plots; prints a summary. --detect-only runs the detection node's pipeline over any "
            "recording (bag, ROS 1 bag, image folder, video) and writes COCO results and a bag instead."
        ),
    )
    d.add_argument(
        "source", type=Path, nargs="+",
        help="dataset folder(s) (dataset.json), rosbag2 / ROS 1 bag(s), or image folder(s) with a COCO "
        "json; frames of several are pooled",
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
    d.add_argument(
        "--detect-only",
        action="store_true",
        help="no scoring: write OUT/detections.json (COCO results), OUT/images.json and OUT/bag",
    )
    d.add_argument("--coco-json", type=Path, default=None, help="COCO instances json for an image folder")
    d.add_argument("--calib", type=Path, default=None, help="KITTI calib file (or folder) for images/videos")
    d.add_argument("--fps", type=float, default=10.0, help="frame rate stamped on images/videos")
    d.add_argument("--no-plots", action="store_true", help="write the JSON report only")
    bag = d.add_argument_group("rosbag2 sources")
    bag.add_argument("--image-topic", default=TOPIC_IMAGE)
    bag.add_argument("--info-topic", default=TOPIC_INFO)
    bag.add_argument("--gt-topic", default=TOPIC_GT2D)
    bag.add_argument("--gt3d-topic", default=TOPIC_GT3D, help="'' for none")
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


# subcommands whose module has add_arguments(parser), run(args) and a docstring
_SUBCOMMANDS = {
    "completion": ("eval_completion_cmd", "SoftPoolNet completion vs baselines (CD, EMD, F-score, Fidelity)"),
    "weather": ("eval_weather_cmd", "weather restoration: PSNR/SSIM, detection AP by condition and severity"),
}


def _add_module(sub: argparse._SubParsersAction, name: str) -> None:
    module_name, help_text = _SUBCOMMANDS[name]
    module: Any = importlib.import_module(f"perception_pkg.cli.{module_name}")
    parser = sub.add_parser(name, help=help_text, description=module.__doc__)
    module.add_arguments(parser)
    parser.set_defaults(func=module.run)


def _pose_missing(args: argparse.Namespace) -> int:
    print(
        f"perception eval pose: not available in this installation ({POSE_MODULE} is missing)",
        file=sys.stderr,
    )
    return 2


def _run_detect(args: argparse.Namespace) -> int:
    from perception_pkg.evaluation.run import EvalInputError, detect_only, run_detect_eval

    if args.detect_only:
        if len(args.source) != 1:
            print("perception eval detect: --detect-only takes one source", file=sys.stderr)
            return 2
        try:
            res = detect_only(
                args.source[0],
                args.out,
                card=args.card,
                backend=args.backend,
                threads=args.threads,
                score_threshold=args.score_threshold,
                lift_3d=not args.no_3d,
                fps=args.fps,
                calib=args.calib,
                image_topic=args.image_topic,
                info_topic=args.info_topic,
            )
        except EvalInputError as exc:
            print(f"perception eval detect: {exc}", file=sys.stderr)
            return 2
        print(f"{res.frames} frames, {res.detections} detections")
        print(f"detections: {res.results}\nimages: {res.images}\nbag: {res.bag}")
        return 0
    try:
        result = run_detect_eval(
            args.source,
            args.out,
            card=args.card,
            backend=args.backend,
            threads=args.threads,
            images=args.images,
            max_frames=args.max_frames,
            score_threshold=args.score_threshold,
            max_dets=args.max_dets,
            min_height_px=args.min_height,
            min_visible_pixels=args.min_visible_pixels,
            lift_3d=not args.no_3d,
            plots=not args.no_plots,
            image_topic=args.image_topic,
            info_topic=args.info_topic,
            gt_topic=args.gt_topic,
            gt3d_topic=args.gt3d_topic or None,
            detections_topic=args.detections_topic,
            detections3d_topic=args.detections3d_topic,
            coco_json=args.coco_json,
            calib=args.calib,
        )
    except EvalInputError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(result.table)
    for name, path in result.written.items():
        print(f"{name}: {path}")
    return 0
