"""Running a detector over evaluation sources, with timings; :func:`run_detect_eval` does the whole job.

:func:`run_on_dataset` / :func:`run_on_bag` turn the frames of :mod:`.sources` into scored
:class:`~perception_pkg.evaluation.detect.EvalFrame` lists, timing each detector stage
(:class:`RunStats`). :func:`run_detect_eval` is ``perception eval detect``: load the detector
(:func:`perception_pkg.detection.load_detector`), pool the frames of every source, score the classes
both sides know, write the report and its figures (:mod:`.report`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.evaluation.detect import (
    DEFAULT_MIN_HEIGHT_PX,
    DEFAULT_MIN_VISIBLE_PIXELS,
    EvalFrame,
    EvalSettings,
    Predictions,
    evaluate,
)
from perception_pkg.evaluation.report import summary_table, write_report
from perception_pkg.evaluation.sources import (
    TOPIC_GT2D,
    TOPIC_GT3D,
    TOPIC_IMAGE,
    TOPIC_INFO,
    BagFrame,
    DatasetFrames,
    find_coco_json,
    is_bag,
    load_coco_folder,
    load_dataset,
    read_bag,
)

DetectFn = Callable[[NDArray[np.uint8], Any], Any]


def predictions_from_result(result: Any) -> Predictions:
    """A :class:`perception_pkg.detection.DetectionResult` as class-named :class:`Predictions`."""
    d = result.detections
    boxes3d = None if result.boxes3d is None else np.asarray(result.boxes3d, dtype=np.float64).reshape(-1, 7)
    return Predictions(
        np.asarray(d.boxes, dtype=np.float64).reshape(-1, 4),
        np.asarray(d.scores, dtype=np.float64).reshape(-1),
        np.array(result.labels(), dtype=str),
        boxes3d,
        scores3d=None if getattr(result, "scores3d", None) is None else np.asarray(result.scores3d, float),
    )


@dataclass
class RunStats:
    """Wall time and per-stage detector timings (seconds, per frame)."""

    frames: int = 0
    wall_s: float = 0.0
    stages: dict[str, list[float]] = field(default_factory=dict)

    def add(self, timings: dict[str, float]) -> None:
        for k, v in timings.items():
            self.stages.setdefault(k, []).append(float(v))

    def summary(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "wall_s": self.wall_s,
            "per_frame_ms": {
                k: {"median": 1e3 * float(np.median(v)), "p90": 1e3 * float(np.percentile(v, 90))}
                for k, v in self.stages.items()
            },
        }


def run_on_dataset(
    detector: DetectFn, data: DatasetFrames, max_frames: int | None = None, stats: RunStats | None = None
) -> list[EvalFrame]:
    """Run ``detector(image_bgr, camera) -> DetectionResult`` over a dataset's frames."""
    import cv2

    stats = stats or RunStats()
    frames = []
    t0 = time.perf_counter()
    for i, (path, gt) in enumerate(zip(data.images, data.gts, strict=True)):
        if max_frames is not None and i >= max_frames:
            break
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise OSError(f"could not read {path}")
        result = detector(image, data.camera)
        stats.add(getattr(result, "timings", {}) or {})
        frames.append(
            EvalFrame(data.keys[i] if data.keys else str(path), gt, predictions_from_result(result))
        )
    stats.frames = len(frames)
    stats.wall_s = time.perf_counter() - t0
    return frames


def run_on_bag(
    detector: DetectFn | None,
    bag_frames: Iterator[BagFrame],
    max_frames: int | None = None,
    stats: RunStats | None = None,
) -> list[EvalFrame]:
    """Frames of :func:`read_bag`: the detector runs on each image, or (None) the bag's detections count."""
    stats = stats or RunStats()
    frames = []
    t0 = time.perf_counter()
    for bf in bag_frames:
        if max_frames is not None and len(frames) >= max_frames:
            break
        if detector is None:
            if bf.pred is None:
                raise ValueError("no detector and no detections topic: nothing to evaluate")
            pred = bf.pred
        else:
            if bf.image_bgr is None:
                raise ValueError(f"frame {bf.stamp_ns}: no image to run the detector on")
            result = detector(bf.image_bgr, bf.camera)
            stats.add(getattr(result, "timings", {}) or {})
            pred = predictions_from_result(result)
        frames.append(EvalFrame(str(bf.stamp_ns), bf.gt, pred))
    stats.frames = len(frames)
    stats.wall_s = time.perf_counter() - t0
    return frames


# --------------------------------------------------------------------------------------------------
# perception eval detect


def _source_kind(path: Path) -> str | None:
    """``dataset`` (perception sim), ``bag`` (rosbag2 / ROS 1), ``coco`` (images + COCO json), or None."""
    if (path / "dataset.json").is_file():
        return "dataset"
    if is_bag(path):
        return "bag"
    if path.is_dir() and find_coco_json(path) is not None:
        return "coco"
    return None


def _bag_part(
    detector: DetectFn | None,
    source: Path,
    max_frames: int | None,
    stats: RunStats,
    image_topic: str,
    info_topic: str,
    gt_topic: str,
    gt3d_topic: str | None,
    detections_topic: str | None,
    detections3d_topic: str | None,
) -> list[EvalFrame]:
    frames = read_bag(
        source,
        image_topic=None if detections_topic else image_topic,
        info_topic=info_topic,
        gt2d_topic=gt_topic,
        gt3d_topic=gt3d_topic or None,
        det_topic=detections_topic,
        det3d_topic=detections3d_topic,
    )
    return run_on_bag(detector, frames, max_frames, stats)


class EvalInputError(ValueError):
    """Sources or options that cannot be evaluated: the message says why (the CLI prints it, exits 2)."""


@dataclass
class DetectEvalResult:
    """The report (as written to ``detect_report.json``), the files written and the summary table."""

    report: dict[str, Any]
    written: dict[str, Path]
    table: str


def run_detect_eval(
    sources: Sequence[str | Path],
    out: str | Path,
    *,
    card: str | Path | None = None,
    backend: str = "auto",
    threads: int | None = None,
    images: str = "clean",
    max_frames: int | None = None,
    score_threshold: float = 0.0,
    max_dets: int = 100,
    min_height_px: float = DEFAULT_MIN_HEIGHT_PX,
    min_visible_pixels: float = DEFAULT_MIN_VISIBLE_PIXELS,
    lift_3d: bool = True,
    plots: bool = True,
    image_topic: str = TOPIC_IMAGE,
    info_topic: str = TOPIC_INFO,
    gt_topic: str = TOPIC_GT2D,
    gt3d_topic: str | None = TOPIC_GT3D,
    detections_topic: str | None = None,
    detections3d_topic: str | None = None,
    coco_json: str | Path | None = None,
    calib: str | Path | None = None,
) -> DetectEvalResult:
    """Score a detector (``card``) over ``sources`` (``perception sim`` dataset folders and/or rosbag2s,
    frames pooled), or with ``detections_topic`` the detections the bags already hold, and write the
    report to ``out``. The arguments are those of ``perception eval detect`` (``--help`` says each);
    inputs that cannot be evaluated raise :class:`EvalInputError`."""
    paths = [Path(s) for s in sources]
    kinds = [_source_kind(src) for src in paths]
    for src, kind in zip(paths, kinds, strict=True):
        if kind is None:
            raise EvalInputError(
                f"{src}: not a dataset folder (dataset.json), a rosbag2 (metadata.yaml), a ROS 1 .bag, or a "
                "folder of images with a COCO instances json; to run a detector without ground truth use "
                "--detect-only"
            )
    if detections_topic and not all(k == "bag" for k in kinds):
        raise EvalInputError("--detections-topic needs rosbag2 sources")
    detector = None
    model: dict[str, Any] = {"source": f"bag topic {detections_topic}"}
    if not detections_topic:
        from perception_pkg.detection import load_detector, resolve_card

        try:
            detector = load_detector(
                card,
                backend,
                threads=threads or 0,
                score_threshold=score_threshold,
                lift_3d=lift_3d,
                where="--card",
            )
        except ValueError as exc:
            raise EvalInputError(str(exc)) from exc
        model = {
            "card": str(resolve_card(card)),
            "name": detector.card.name,
            "classes": list(detector.class_names),
            "backend": backend,
            "has_3d": bool(detector.has_3d and lift_3d),
            "score_threshold": score_threshold,
        }
    stats = RunStats()
    frames: list[EvalFrame] = []
    gt_names: list[str] = []
    srcs = []
    wall_s = 0.0
    for source, kind in zip(paths, kinds, strict=True):
        if kind == "bag":
            try:
                part = _bag_part(
                    detector, source, max_frames, stats, image_topic, info_topic, gt_topic, gt3d_topic,
                    detections_topic, detections3d_topic,
                )  # fmt: skip
            except ValueError as exc:  # e.g. a recording without ground-truth topics
                raise EvalInputError(f"{exc}; to run the detector without scoring use --detect-only") from exc
            names_here = sorted({c for f in part for c in f.gt.classes.tolist()})
            srcs.append({"kind": "rosbag2", "path": str(source), "gt_topic": gt_topic})
        elif kind == "coco":
            data = load_coco_folder(source, coco_json, calib)
            part = run_on_dataset(detector, data, max_frames, stats)  # type: ignore[arg-type]
            names_here = list(data.class_names)
            srcs.append({"kind": "images+coco", "path": str(source), "frames": len(data.images)})
        else:
            data = load_dataset(source, images)
            part = run_on_dataset(detector, data, max_frames, stats)  # type: ignore[arg-type]
            names_here = list(data.class_names)
            srcs.append({"kind": "dataset", "path": str(source), "images": images})
        if len(paths) > 1:  # frame keys must stay unique across sources
            part = [dataclasses.replace(f, key=f"{source}/{f.key}") for f in part]
        frames.extend(part)
        wall_s += stats.wall_s
        gt_names.extend(n for n in names_here if n not in gt_names)
    stats.frames, stats.wall_s = len(frames), wall_s
    src = srcs[0] if len(srcs) == 1 else {"kind": "several", "sources": srcs}
    where = paths[0] if len(paths) == 1 else f"{len(paths)} sources"
    if not frames:
        raise EvalInputError(f"{where}: no frames with ground truth")
    # score the classes both sides know; the rest is counted under counts.not_evaluated
    det_names = model.get("classes") or sorted({c for f in frames for c in f.pred.classes.tolist()})
    names = [n for n in gt_names if n in set(det_names)]
    if not names:
        raise EvalInputError(f"no class in common: ground truth {gt_names}, detector {det_names}")
    settings = EvalSettings(
        min_height_px=min_height_px, min_visible_pixels=min_visible_pixels, max_dets=max_dets
    )
    scored = evaluate(frames, names, settings)
    src["frames"] = len(frames)
    report = {
        "tool": "perception eval detect",
        "model": model,
        "source": src,
        **scored,
        "run": stats.summary(),
    }
    written = write_report(report, out, plots=plots)
    return DetectEvalResult(report, written, summary_table(report))


# --------------------------------------------------------------------------------------------------
# perception eval detect --detect-only


@dataclass
class DetectOnlyResult:
    """What ``--detect-only`` wrote: COCO results json, the images table, the replay's output bag."""

    results: Path
    images: Path
    bag: Path | None
    detections: int
    frames: int


def detect_only(
    source: str | Path,
    out: str | Path,
    *,
    card: str | Path | None = None,
    backend: str = "auto",
    threads: int | None = None,
    score_threshold: float = 0.0,
    lift_3d: bool = True,
    fps: float = 10.0,
    calib: str | Path | None = None,
    image_topic: str = TOPIC_IMAGE,
    info_topic: str = TOPIC_INFO,
) -> DetectOnlyResult:
    """Run the detection pipeline (the node's own code, through replay) over any recording — a rosbag2, a
    ROS 1 bag, a folder of images or a video — and write, without scoring, ``out/bag`` (the inputs and the
    node's topics), ``out/detections.json`` (COCO results: ``image_id``, ``category_id``, ``bbox`` xywh
    in COCO pixels, ``score``) and ``out/images.json`` (COCO ``images``: id, stamp, file name for image
    folders, width, height; ``categories`` from the card)."""
    import json

    from perception_pkg.bag import open_bag
    from perception_pkg.datasets.recordings import image_files, kind_of
    from perception_pkg.detection import resolve_card
    from perception_pkg.evaluation.sources import detections2d_from_msg
    from perception_pkg.msgs import stamp_to_ns
    from perception_pkg.pipelines import private_topic
    from perception_pkg.pipelines.detection import DetectionSettings
    from perception_pkg.replay import replay_bag
    from perception_pkg.runtime.settings import ConfigError

    source, out = Path(source), Path(out)
    overrides: dict[str, Any] = {
        "detection.backend": backend,
        "detection.threads": int(threads or 0),
        "detection.score_threshold": float(score_threshold),
        "detection.lift_3d": bool(lift_3d),
        "detection.image_topic": image_topic,
        "detection.camera_info_topic": info_topic,
    }
    if card is not None:
        overrides["detection.model_card"] = str(card)
    try:
        res = replay_bag(
            source, out, ["detection"], overrides=overrides, fps=fps, calib=calib, progress=False
        )
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        raise EvalInputError(str(exc)) from exc
    from perception_pkg.cards import load_card

    classes = list(load_card(resolve_card(card), check_onnx=False).classes)
    detections_topic = private_topic(DetectionSettings().detections_2d_topic, "detection")
    names = [p.name for p in image_files(source)] if kind_of(source) == "images" else []
    images, results = [], []
    sizes: dict[int, tuple[int, int]] = {}
    with open_bag(res.output_bag) as reader:
        for m, msg in reader.decoded([image_topic, detections_topic]):
            stamp = stamp_to_ns(msg.header)
            if m.topic == image_topic:
                sizes[stamp] = (int(msg.width), int(msg.height))
                continue
            image_id = len(images) + 1
            entry: dict[str, Any] = {"id": image_id, "stamp_ns": stamp}
            if len(images) < len(names):
                entry["file_name"] = names[len(images)]
            images.append(entry)
            boxes, scores, labels, _ = detections2d_from_msg(msg)
            for box, score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist(), strict=True):
                x0, y0, x1, y1 = box
                results.append(
                    {
                        "image_id": image_id,
                        "category_id": classes.index(label) + 1 if label in classes else 0,
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "score": score,
                    }
                )
    for entry in images:
        entry["width"], entry["height"] = sizes.get(entry["stamp_ns"], (0, 0))
    out.mkdir(parents=True, exist_ok=True)
    results_path, images_path = out / "detections.json", out / "images.json"
    results_path.write_text(json.dumps(results))
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(classes)]
    images_path.write_text(json.dumps({"images": images, "categories": categories}, indent=1))
    return DetectOnlyResult(results_path, images_path, res.output_bag, len(results), len(images))


__all__ = [
    "DetectEvalResult",
    "DetectFn",
    "DetectOnlyResult",
    "EvalInputError",
    "RunStats",
    "detect_only",
    "predictions_from_result",
    "run_detect_eval",
    "run_on_bag",
    "run_on_dataset",
]
