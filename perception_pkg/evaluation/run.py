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
    is_bag,
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
) -> DetectEvalResult:
    """Score a detector (``card``) over ``sources`` (``perception sim`` dataset folders and/or rosbag2s,
    frames pooled), or with ``detections_topic`` the detections the bags already hold, and write the
    report to ``out``. The arguments are those of ``perception eval detect`` (``--help`` says each);
    inputs that cannot be evaluated raise :class:`EvalInputError`."""
    paths = [Path(s) for s in sources]
    kinds = [is_bag(src) for src in paths]
    for src, bag in zip(paths, kinds, strict=True):
        if not bag and not (src / "dataset.json").is_file():
            raise EvalInputError(
                f"{src}: neither a dataset folder (dataset.json) nor a rosbag2 (metadata.yaml)"
            )
    if detections_topic and not all(kinds):
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
    for source, bag in zip(paths, kinds, strict=True):
        if bag:
            part = run_on_bag(
                detector,
                read_bag(
                    source,
                    image_topic=None if detections_topic else image_topic,
                    info_topic=info_topic,
                    gt2d_topic=gt_topic,
                    gt3d_topic=gt3d_topic or None,
                    det_topic=detections_topic,
                    det3d_topic=detections3d_topic,
                ),
                max_frames,
                stats,
            )
            names_here = sorted({c for f in part for c in f.gt.classes.tolist()})
            srcs.append({"kind": "rosbag2", "path": str(source), "gt_topic": gt_topic})
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


__all__ = [
    "DetectEvalResult",
    "DetectFn",
    "EvalInputError",
    "RunStats",
    "predictions_from_result",
    "run_detect_eval",
    "run_on_bag",
    "run_on_dataset",
]
