"""Detection evaluation (issue 5): a detector against simulator ground truth, one JSON-able report.

Sources of frames:

- a dataset folder written by ``perception sim`` (``dataset.json``, ``annotations/detection.json``,
  ``images/<subset>/*.png``): :func:`load_dataset`;
- a rosbag2 with ``/camera/image_raw``, ``/camera/camera_info`` and the ``/ground_truth/detections_2d``
  / ``_3d`` topics (what ``perception sim`` writes), optionally carrying the detections already (a
  replay output bag): :func:`read_bag`.

Metrics (:func:`evaluate`), each with the field's own definition:

- COCO box AP, AP50, ... overall and per class, through pycocotools (``metrics.coco_box``);
- the TIDE error breakdown at AP50 (``metrics.tide``, agrees with tidecv);
- for cars, KITTI AP3D and AP_BEV at IoU 0.5 and 0.7 with 40 recall points (``metrics.kitti3d``),
  when the detections carry 3D boxes and the ground truth has them.

Ground-truth hygiene: an object too small (modal box height < ``min_height_px``) or too hidden (fewer
than ``min_visible_pixels`` visible pixels) to be a fair target is *ignored*: it is no positive and no
miss, and a detection that matches no kept object but lands on an ignored one counts neither as true
nor as false positive (pycocotools' ``iscrowd`` rule; the same rule in TIDE and KITTI AP). Every
figure is also reported without the filter (``unfiltered``), where every annotated object counts.

Box conventions: 2D boxes are xyxy in continuous pixel coordinates, pixel i spanning [i, i + 1]
(COCO's, and the dataset json's). The bag's ground-truth Detection2D boxes use the pixel-centre
convention of ``sim/truth.py`` (pixel i centred on i) and are shifted by +0.5 on reading; detections
read from a bag are taken as they are (a detector node publishes its boxes in source pixels, the
COCO convention). 3D boxes are KITTI camera-frame ``[x, y, z, h, w, l, rotation_y]``, bottom centre.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.metrics.coco_box import coco_box_ap
from perception_pkg.metrics.kitti3d import RECALL_POSITIONS_R40, interpolated_precision_r40, kitti_ap_curves
from perception_pkg.metrics.tide import TideAnalysis

DEFAULT_MIN_HEIGHT_PX = 20.0
DEFAULT_MIN_VISIBLE_PIXELS = 150.0
KITTI_CLASS = "car"

TOPIC_IMAGE = "/camera/image_raw"
TOPIC_INFO = "/camera/camera_info"
TOPIC_GT2D = "/ground_truth/detections_2d"
TOPIC_GT3D = "/ground_truth/detections_3d"


@dataclass
class GroundTruth:
    """Annotated objects of one frame. ``classes`` are names (sources differ in their ids);
    ``visible_pixels`` is NaN where the source does not know it (bags); ``boxes3d`` rows are NaN for
    objects without a 3D box, and the whole array None when the source has no 3D ground truth."""

    boxes: NDArray[np.float64]  # (N, 4) xyxy
    classes: NDArray[np.str_]  # (N,)
    visible_pixels: NDArray[np.float64]  # (N,)
    boxes3d: NDArray[np.float64] | None = None  # (N, 7)
    # share of the amodal box outside the image (KITTI's truncation), NaN / None where unknown
    truncation: NDArray[np.float64] | None = None

    @classmethod
    def empty(cls) -> GroundTruth:
        return cls(np.zeros((0, 4)), np.zeros(0, dtype=str), np.zeros(0), None)


@dataclass
class Predictions:
    """Detections of one frame; ``boxes3d`` (M, 7) aligned row by row with the 2D rows (NaN where a
    detection has no 3D box), or None when the detector gives no 3D. ``boxes3d_only`` holds 3D
    detections that come without 2D rows (a bag's Detection3DArray topic): (boxes, scores, classes)."""

    boxes: NDArray[np.float64]
    scores: NDArray[np.float64]
    classes: NDArray[np.str_]
    boxes3d: NDArray[np.float64] | None = None
    boxes3d_only: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.str_]] | None = None
    scores3d: NDArray[np.float64] | None = None  # 3D confidence per row, when it differs from ``scores``

    @classmethod
    def empty(cls) -> Predictions:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=str))

    def det3d(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.str_]] | None:
        """(boxes (K, 7), scores, classes) of the 3D detections, or None when there are none."""
        if self.boxes3d_only is not None:
            return self.boxes3d_only
        if self.boxes3d is None:
            return None
        return self.boxes3d, self.scores if self.scores3d is None else self.scores3d, self.classes


@dataclass
class EvalFrame:
    """One evaluated frame: an identifier (image file or stamp), its ground truth and detections."""

    key: str
    gt: GroundTruth
    pred: Predictions


@dataclass(frozen=True)
class EvalSettings:
    min_height_px: float = DEFAULT_MIN_HEIGHT_PX
    min_visible_pixels: float = DEFAULT_MIN_VISIBLE_PIXELS
    max_dets: int = 100
    tide_pos_thresh: float = 0.5
    tide_bg_thresh: float = 0.1
    kitti_class: str = KITTI_CLASS
    kitti_iou: tuple[float, ...] = (0.5, 0.7)
    max_truncation_3d: float = 0.3


# --------------------------------------------------------------------------------------------------
# ground-truth hygiene


def ignore_reasons(gt: GroundTruth, settings: EvalSettings) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """(too_small, too_hidden) per object. Unknown visible pixels (NaN) never make an object hidden."""
    height = gt.boxes[:, 3] - gt.boxes[:, 1]
    small = height < settings.min_height_px
    with np.errstate(invalid="ignore"):
        hidden = np.nan_to_num(gt.visible_pixels, nan=np.inf) < settings.min_visible_pixels
    return small, hidden


# --------------------------------------------------------------------------------------------------
# metrics


def _frames_2d(
    frames: Sequence[EvalFrame], names: Sequence[str], ignores: Sequence[NDArray[np.bool_]] | None
) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """Metric frames (``metrics.boxes2d`` format) over the evaluated classes; other classes dropped."""
    index = {n: i for i, n in enumerate(names)}
    gts, dets = [], []
    for k, f in enumerate(frames):
        g_lab = np.array([index.get(c, -1) for c in f.gt.classes.tolist()], dtype=np.int64)
        g_in = g_lab >= 0
        gt = {"boxes": f.gt.boxes[g_in], "labels": g_lab[g_in]}
        if ignores is not None:
            gt["ignore"] = ignores[k][g_in]
        d_lab = np.array([index.get(c, -1) for c in f.pred.classes.tolist()], dtype=np.int64)
        d_in = d_lab >= 0
        gts.append(gt)
        dets.append({"boxes": f.pred.boxes[d_in], "scores": f.pred.scores[d_in], "labels": d_lab[d_in]})
    return gts, dets


def _kitti(
    frames: Sequence[EvalFrame], settings: EvalSettings, ignores: Sequence[NDArray[np.bool_]] | None
) -> dict[str, Any]:
    """AP3D / AP_BEV of ``settings.kitti_class`` or ``{"skipped": why}``."""
    cls = settings.kitti_class
    if not any(f.gt.boxes3d is not None and np.any(f.gt.classes == cls) for f in frames):
        return {"skipped": f"the ground truth has no 3D boxes of class {cls!r}"}
    if not any(f.pred.det3d() is not None for f in frames):
        return {"skipped": "the detections carry no 3D boxes (no RTM3D heads, or no camera model)"}
    g_boxes, g_ign, d_boxes, d_scores = [], [], [], []
    missing_3d = 0
    for k, f in enumerate(frames):
        sel = f.gt.classes == cls
        g3 = f.gt.boxes3d[sel] if f.gt.boxes3d is not None else np.full((int(sel.sum()), 7), np.nan)
        # a GT without a 3D box cannot be matched in 3D: it is ignored rather than counted as missed
        no3d = ~np.all(np.isfinite(g3), axis=1)
        ign = no3d if ignores is None else ignores[k][sel] | no3d
        if ignores is not None and f.gt.truncation is not None:
            # KITTI's moderate difficulty stops at 30% truncation: a box cut by the image border has
            # too few of its 9 keypoints in view to pin it down (applied with the other filters)
            with np.errstate(invalid="ignore"):
                ign = ign | (f.gt.truncation[sel] > settings.max_truncation_3d)
        g_boxes.append(np.where(no3d[:, None], 0.0, g3))
        g_ign.append(ign)
        det = f.pred.det3d()
        if det is None:
            d_boxes.append(np.zeros((0, 7)))
            d_scores.append(np.zeros(0))
            continue
        b, s, c = det
        m = c == cls
        missing_3d += int(np.sum(m & ~np.all(np.isfinite(b), axis=1)))
        d_boxes.append(b[m])
        d_scores.append(s[m])
    curves = kitti_ap_curves(g_boxes, d_boxes, d_scores, settings.kitti_iou, g_ign)
    return {
        "class": cls,
        "recall_positions": 40,
        "AP": {k: v[0] for k, v in curves.items()},
        "pr": {k: interpolated_precision_r40(v[1], v[2]).tolist() for k, v in curves.items()},
        "num_gt": int(sum(int((~i).sum()) for i in g_ign)),
        "num_det": int(sum(len(s) for s in d_scores)),
        "num_det_without_3d": missing_3d,
    }


def _metrics(
    frames: Sequence[EvalFrame],
    names: Sequence[str],
    settings: EvalSettings,
    ignores: Sequence[NDArray[np.bool_]] | None,
) -> dict[str, Any]:
    gts, dets = _frames_2d(frames, names, ignores)
    coco = coco_box_ap(gts, dets, class_names=names, max_dets=settings.max_dets)
    tide = TideAnalysis(gts, dets, settings.tide_pos_thresh, settings.tide_bg_thresh, settings.max_dets)
    return {"coco": coco, "tide": tide.summary(), "kitti3d": _kitti(frames, settings, ignores)}


def evaluate(
    frames: Sequence[EvalFrame],
    class_names: Sequence[str],
    settings: EvalSettings | None = None,
) -> dict[str, Any]:
    """All metrics with the ground-truth filter (``filtered``) and without (``unfiltered``), counts and
    settings, as plain JSON-able values. ``class_names``: the classes to score (others are dropped
    from both sides and counted under ``counts.not_evaluated``)."""
    settings = settings or EvalSettings()
    names = list(class_names)
    reasons = [ignore_reasons(f.gt, settings) for f in frames]
    ignores = [small | hidden for small, hidden in reasons]
    per_class: dict[str, dict[str, int]] = {}
    for n in names:
        in_gt = [f.gt.classes == n for f in frames]
        per_class[n] = {
            "gt": int(sum(m.sum() for m in in_gt)),
            "gt_kept": int(sum((m & ~i).sum() for m, i in zip(in_gt, ignores, strict=True))),
            "gt_ignored": int(sum((m & i).sum() for m, i in zip(in_gt, ignores, strict=True))),
            "gt_too_small": int(sum((m & r[0]).sum() for m, r in zip(in_gt, reasons, strict=True))),
            "gt_too_hidden": int(sum((m & r[1]).sum() for m, r in zip(in_gt, reasons, strict=True))),
            "detections": int(sum(np.sum(f.pred.classes == n) for f in frames)),
        }
    other_gt: dict[str, int] = {}
    other_det: dict[str, int] = {}
    for f in frames:
        for c in f.gt.classes.tolist():
            if c not in per_class:
                other_gt[c] = other_gt.get(c, 0) + 1
        for c in f.pred.classes.tolist():
            if c not in per_class:
                other_det[c] = other_det.get(c, 0) + 1
    return {
        "settings": _settings_dict(settings),
        "classes": names,
        "counts": {
            "frames": len(frames),
            "per_class": per_class,
            "not_evaluated": {"gt": other_gt, "detections": other_det},
            "visible_pixels_known": bool(
                all(np.all(np.isfinite(f.gt.visible_pixels)) for f in frames if len(f.gt.classes))
            ),
        },
        "filtered": _metrics(frames, names, settings, ignores),
        "unfiltered": _metrics(frames, names, settings, None),
    }


def _settings_dict(settings: EvalSettings) -> dict[str, Any]:
    out = asdict(settings)
    out["kitti_iou"] = list(settings.kitti_iou)
    out["ignore_rule"] = (
        f"GT ignored when its modal box is < {settings.min_height_px:g} px high or it has < "
        f"{settings.min_visible_pixels:g} visible pixels (where the source knows them); a detection "
        "matching no kept GT but covering an ignored GT of its class (2D: intersection / detection area "
        ">= IoU threshold, pycocotools iscrowd; 3D: IoU >= threshold) is neither TP nor FP"
    )
    out["box_convention"] = "xyxy continuous pixels, pixel i spans [i, i+1] (COCO)"
    out["kitti_note"] = (
        "R40 AP on a greedy score-ordered match; no KITTI difficulty levels (the GT filter above "
        f"stands in, plus KITTI moderate's truncation limit: filtered 3D figures ignore GT more than "
        f"{settings.max_truncation_3d:.0%} outside the image where the source gives amodal boxes); "
        "detections whose 3D solve failed count as false positives"
    )
    return out


# --------------------------------------------------------------------------------------------------
# sources


def camera_from_dataset(manifest: dict[str, Any]) -> Any:
    """The dataset's camera as a CameraModel: the simulator has no distortion, so P = K [I | 0]."""
    from perception_pkg.msgs import CameraModel

    cam = manifest["camera"]
    K = np.asarray(cam["K"], dtype=np.float64).reshape(3, 3)
    return CameraModel(
        width=int(cam["width"]),
        height=int(cam["height"]),
        K=K,
        D=np.zeros(5),
        R=np.eye(3),
        P=np.hstack([K, np.zeros((3, 1))]),
        distortion_model="plumb_bob",
        frame_id=str(cam.get("frame_id", "")),
    )


@dataclass
class DatasetFrames:
    """A dataset folder's frames: image paths and ground truth, the camera and the class names."""

    root: Path
    images: list[Path]
    gts: list[GroundTruth]
    class_names: list[str]
    camera: Any
    subset: str = "clean"
    keys: list[str] = field(default_factory=list)


def _truncation(anns: list[dict[str, Any]], width: Any, height: Any) -> NDArray[np.float64]:
    """KITTI truncation per annotation: 1 - (amodal box clipped to the image) / amodal box area."""
    out = np.full(len(anns), np.nan)
    if not width or not height:
        return out
    for i, a in enumerate(anns):
        box = a.get("amodal_bbox")
        if not box or box[2] <= 0 or box[3] <= 0:
            continue
        x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
        x1, y1 = min(box[0] + box[2], float(width)), min(box[1] + box[3], float(height))
        inside = max(x1 - x0, 0.0) * max(y1 - y0, 0.0)
        out[i] = 1.0 - inside / (box[2] * box[3])
    return out


def load_dataset(root: str | Path, subset: str = "clean") -> DatasetFrames:
    """Ground truth of a ``perception sim`` dataset; ``subset`` picks ``images/<subset>`` (``clean``,
    ``fog_s3``, ...; degraded copies share the clean frame's annotations)."""
    root = Path(root)
    manifest = json.loads((root / "dataset.json").read_text())
    coco = json.loads((root / "annotations" / "detection.json").read_text())
    cat_name = {c["id"]: c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])}
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    images, gts, keys = [], [], []
    for img in sorted(coco["images"], key=lambda i: i["id"]):
        name = Path(img["file_name"]).name
        path = root / "images" / subset / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no image {name!r} in subset {subset!r}")
        anns = by_image.get(img["id"], [])
        xywh = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
        boxes = np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]]
        boxes3d = np.full((len(anns), 7), np.nan)
        for i, a in enumerate(anns):
            b = a.get("box3d_camera")
            if b:
                boxes3d[i] = [*b["location"], *b["dimensions"], b["rotation_y"]]
        gts.append(
            GroundTruth(
                boxes=boxes,
                classes=np.array([cat_name[a["category_id"]] for a in anns], dtype=str),
                visible_pixels=np.array([a.get("area", np.nan) for a in anns], dtype=np.float64),
                boxes3d=boxes3d,
                truncation=_truncation(anns, img.get("width"), img.get("height")),
            )
        )
        images.append(path)
        keys.append(f"images/{subset}/{name}")
    return DatasetFrames(
        root, images, gts, list(cat_name.values()), camera_from_dataset(manifest), subset, keys
    )


def detections2d_from_msg(msg: Any, shift: float = 0.0) -> tuple[NDArray, NDArray, NDArray, list[str]]:
    """(boxes xyxy (N, 4) + shift, scores, class names, ids) of a Detection2DArray."""
    from perception_pkg.msgs.detections import detection2d_array_to_xyxy

    boxes, scores, labels = detection2d_array_to_xyxy(msg)
    ids = [str(d.id) for d in msg.detections]
    return boxes + shift, scores, np.array(labels, dtype=str).reshape(-1), ids


def detections3d_from_msg(msg: Any) -> tuple[NDArray, NDArray, NDArray, list[str]]:
    """(KITTI boxes (N, 7), scores, class names, ids) of a camera-frame Detection3DArray (the box
    convention the simulator's ground truth and the detection node share)."""
    from perception_pkg.msgs.detections import detection3d_array_to_kitti

    boxes, scores, labels, ids = detection3d_array_to_kitti(msg)
    return boxes, scores, np.array(labels, dtype=str).reshape(-1), ids


@dataclass
class BagFrame:
    stamp_ns: int
    image_bgr: NDArray[np.uint8] | None
    camera: Any
    gt: GroundTruth
    pred: Predictions | None


def read_bag(
    path: str | Path,
    image_topic: str | None = TOPIC_IMAGE,
    info_topic: str = TOPIC_INFO,
    gt2d_topic: str = TOPIC_GT2D,
    gt3d_topic: str | None = TOPIC_GT3D,
    det_topic: str | None = None,
    det3d_topic: str | None = None,
) -> Iterator[BagFrame]:
    """Frames of a rosbag2, one per ground-truth stamp, in stamp order, as each becomes complete.

    With ``det_topic`` (and ``det3d_topic``) the detections come from the bag (``pred`` set) and
    ``image_topic`` may be None; else ``image_bgr`` is decoded for a detector to run on. Messages of a
    frame are grouped by header stamp, as the simulator and replay write them.
    """
    from rosbags.rosbag2 import Reader

    from perception_pkg.bag import get_typestore
    from perception_pkg.msgs import camera_info_to_model, image_to_bgr, stamp_to_ns

    ts = get_typestore()
    needed = {t for t in (image_topic, gt2d_topic, gt3d_topic, det_topic, det3d_topic) if t}
    wanted = needed | {info_topic}
    pending: dict[int, dict[str, Any]] = {}
    camera = None
    with Reader(path) as reader:
        conns = [c for c in reader.connections if c.topic in wanted]
        present = {c.topic for c in conns}
        missing = sorted(needed - present)
        if missing:
            raise ValueError(
                f"{path}: no topic {', '.join(missing)} "
                f"(it has {sorted(c.topic for c in reader.connections)})"
            )
        for conn, _t, raw in reader.messages(connections=conns):
            msg = ts.deserialize_cdr(raw, conn.msgtype)
            if conn.topic == info_topic:
                camera = camera_info_to_model(msg)
                continue
            stamp = stamp_to_ns(msg.header.stamp)
            slot = pending.setdefault(stamp, {})
            slot[conn.topic] = msg
            if needed <= slot.keys() and camera is not None:
                yield _bag_frame(
                    pending.pop(stamp),
                    stamp,
                    camera,
                    image_topic,
                    gt2d_topic,
                    gt3d_topic,
                    det_topic,
                    det3d_topic,
                    image_to_bgr,
                )
    # stamps that never completed (e.g. the bag was cut) are left out, not guessed


def _bag_frame(
    slot: dict[str, Any],
    stamp: int,
    camera: Any,
    image_topic: str | None,
    gt2d_topic: str,
    gt3d_topic: str | None,
    det_topic: str | None,
    det3d_topic: str | None,
    image_to_bgr: Callable[[Any], NDArray[np.uint8]],
) -> BagFrame:
    # ground-truth Detection2D boxes use ROS's pixel-centre convention like every Detection2D; the reader
    # maps them to the stack's (COCO's) convention
    boxes, _, classes, ids = detections2d_from_msg(slot[gt2d_topic])
    boxes3d = None
    if gt3d_topic:
        b3, _, _, ids3 = detections3d_from_msg(slot[gt3d_topic])
        row = {i: k for k, i in enumerate(ids3)}
        boxes3d = np.full((len(ids), 7), np.nan)
        for k, i in enumerate(ids):
            if i in row:
                boxes3d[k] = b3[row[i]]
    gt = GroundTruth(boxes, classes, np.full(len(ids), np.nan), boxes3d)
    pred = None
    if det_topic:
        db, ds, dc, _ = detections2d_from_msg(slot[det_topic])
        extra = None
        if det3d_topic:
            b3, s3, c3, _ = detections3d_from_msg(slot[det3d_topic])
            extra = (b3, s3, c3)
        pred = Predictions(db, ds, dc, None, extra)
    image = image_to_bgr(slot[image_topic]) if image_topic and image_topic in slot else None
    return BagFrame(stamp, image, camera, gt, pred)


# --------------------------------------------------------------------------------------------------
# running a detector


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
# report


def summary_table(report: dict[str, Any]) -> str:
    """A short plain-text table of the main figures (filtered, with the unfiltered AP50 alongside)."""
    f, u = report["filtered"], report["unfiltered"]
    counts = report["counts"]["per_class"]
    lines = [
        f"{'class':<10} {'GT kept':>7} {'ignored':>7} {'dets':>6} {'AP':>6} {'AP50':>6} {'AP50 unfilt.':>12}"
    ]
    for n in report["classes"]:
        c = counts[n]
        pc = f["coco"]["per_class"].get(n, {})
        pu = u["coco"]["per_class"].get(n, {})
        lines.append(
            f"{n:<10} {c['gt_kept']:>7} {c['gt_ignored']:>7} {c['detections']:>6} "
            f"{_pct(pc.get('AP')):>6} {_pct(pc.get('AP50')):>6} {_pct(pu.get('AP50')):>12}"
        )
    lines.append(
        f"{'all':<10} {'':>7} {'':>7} {'':>6} {_pct(f['coco']['AP']):>6} {_pct(f['coco']['AP50']):>6} "
        f"{_pct(u['coco']['AP50']):>12}"
    )
    t = f["tide"]
    main = "  ".join(f"{k} {v:.1f}" for k, v in t["main_dAP"].items())
    special = "  ".join(f"{k} {v:.1f}" for k, v in t["special_dAP"].items())
    lines.append(f"TIDE dAP at AP50 {t['AP50']:.1f}: {main}  |  {special}")
    for label, part in (("", f), (" unfiltered", u)):
        k3 = part["kitti3d"]
        if "AP" in k3:
            lines.append(
                f"{k3['class']} KITTI R40{label}: "
                + "  ".join(f"{k} {100 * v:.1f}" for k, v in k3["AP"].items())
            )
        elif label == "":
            lines.append(f"KITTI AP3D skipped: {k3['skipped']}")
    return "\n".join(lines)


def _pct(v: float | None) -> str:
    return "-" if v is None or v < 0 else f"{100 * v:.1f}"


def write_report(report: dict[str, Any], out: str | Path, plots: bool = True) -> dict[str, Path]:
    """``out/detect_report.json`` and (``plots``) the PNGs of :mod:`.plots`; returns name -> path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "detect_report.json"
    path.write_text(json.dumps(report, indent=1, default=_json_default) + "\n")
    written = {"report": path}
    if plots:
        from perception_pkg.evaluation.plots import plot_detection_report

        written.update(plot_detection_report(report, out))
    return written


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


__all__ = [
    "DEFAULT_MIN_HEIGHT_PX",
    "DEFAULT_MIN_VISIBLE_PIXELS",
    "RECALL_POSITIONS_R40",
    "BagFrame",
    "DatasetFrames",
    "EvalFrame",
    "EvalSettings",
    "GroundTruth",
    "Predictions",
    "RunStats",
    "evaluate",
    "ignore_reasons",
    "load_dataset",
    "predictions_from_result",
    "read_bag",
    "run_on_bag",
    "run_on_dataset",
    "summary_table",
    "write_report",
]
