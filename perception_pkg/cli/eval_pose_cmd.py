"""``perception eval pose``: COCO keypoint AP (pycocotools) and PCK/AUC of a pose model.

SOURCE is one of
- a simulator dataset folder (``annotations/keypoints.json`` + ``images/``), as ``perception sim`` writes;
- a COCO-format folder: a ground-truth keypoint json (``--gt``, default the folder's ``*keypoints*.json``),
  images (``--images``, default the folder itself or its ``images/``) and optionally a COCO results
  file of person boxes (``--detections``, default the folder's ``*detections*.json``);
- a rosbag2 with ``/ground_truth/people`` (and the camera images).

Writes ``OUT/pose_report.json``, ``OUT/pose_keypoints.json`` (COCO results) and PNG plots.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="sim dataset folder, COCO-format folder, or bag")
    parser.add_argument("--card", default=None, help="pose model card (default models/sim_pose/card.yaml)")
    parser.add_argument("--backend", default="auto", help="engine backend (auto, onnxruntime, ...)")
    parser.add_argument(
        "--boxes",
        choices=["auto", "gt", "detections", "detector"],
        default="auto",
        help="person boxes to crop: ground truth, a detections file/topic, or a detector run here "
        "(auto: detections when a detections file is found, else gt)",
    )
    parser.add_argument("--gt", type=Path, default=None, help="COCO keypoint ground truth json")
    parser.add_argument("--images", type=Path, default=None, help="image folder of a COCO-format set")
    parser.add_argument("--detections", type=Path, default=None, help="COCO results json of person boxes")
    parser.add_argument("--detector-card", default=None, help="detector card for --boxes detector")
    parser.add_argument("--min-box-score", type=float, default=0.0, help="ignore person boxes below this")
    parser.add_argument("--image-topic", default="/camera/image_raw")
    parser.add_argument("--people-topic", default="/ground_truth/people")
    parser.add_argument("--detections-topic", default="/ground_truth/detections_2d")
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("out/eval_pose"), help="report folder")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the report JSON instead of a summary")


def _is_bag(path: Path) -> bool:
    return path.suffix in (".mcap", ".db3") or (path.is_dir() and (path / "metadata.yaml").is_file())


def _first(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(pattern))
    return found[0] if found else None


def run(args: argparse.Namespace) -> int:
    from perception_pkg.evaluation import pose as ev
    from perception_pkg.pose import PoseEstimator

    src: Path = args.source
    if not src.exists():
        print(f"perception eval pose: not found: {src}", file=sys.stderr)
        return 2
    try:
        estimator = PoseEstimator.from_card(args.card, backend=args.backend)
    except (OSError, ValueError) as exc:
        print(f"perception eval pose: cannot load the pose model: {exc}", file=sys.stderr)
        return 2
    detector = None
    boxes = args.boxes
    categories = None
    try:
        if _is_bag(src):
            boxes = "gt" if boxes == "auto" else boxes
            detector = _detector(args) if boxes == "detector" else None
            frames: Any = ev.bag_frames(
                src,
                args.image_topic,
                args.people_topic,
                boxes,
                args.detections_topic,
                detector,
                args.max_images,
            )
        else:
            sim = src / "annotations" / "keypoints.json"
            gt_path = args.gt or (sim if sim.is_file() else _first(src, "*keypoints*.json"))
            if gt_path is None:
                print(f"perception eval pose: no keypoint ground truth in {src} (give --gt)", file=sys.stderr)
                return 2
            gt = json.loads(Path(gt_path).read_text())
            categories = gt.get("categories")
            det_path = args.detections or (None if sim.is_file() else _first(src, "*detections*.json"))
            if boxes == "auto":
                boxes = "detections" if det_path is not None else "gt"
            if boxes == "detections" and det_path is None:
                print("perception eval pose: --boxes detections needs --detections", file=sys.stderr)
                return 2
            detections = json.loads(Path(det_path).read_text()) if boxes == "detections" else None
            images = args.images or (
                src if not (src / "images").is_dir() or sim.is_file() else src / "images"
            )
            detector = _detector(args) if boxes == "detector" else None
            frames = ev.coco_frames(gt, images, boxes, detections, detector, args.max_images)
        report = ev.evaluate(
            estimator,
            frames,
            min_box_score=args.min_box_score,
            categories=categories,
            source=str(src),
            boxes=boxes,
        )
    except (OSError, ValueError) as exc:
        print(f"perception eval pose: {exc}", file=sys.stderr)
        return 2
    written = ev.write_report(report, args.out, plots=not args.no_plots)
    if args.json:
        print(written["report"].read_text())
    else:
        print("\n".join(ev.summary_lines(report)))
        print(f"report: {written['report']}")
    return 0


def _detector(args: argparse.Namespace) -> Any:
    from perception_pkg.detection import load_detector

    return load_detector(args.detector_card, backend=args.backend, lift_3d=False, where="--detector-card")
