"""Pose evaluation: COCO keypoint AP (pycocotools) and PCK@alpha with its AUC, on a simulator dataset,
a COCO-format folder or a bag with ``/ground_truth/people``. numpy (+ pycocotools), no rclpy.

The metrics are :mod:`perception_pkg.metrics.keypoints` (exact definitions there):
- **COCO keypoint AP**: pycocotools ``COCOeval(iouType="keypoints")`` with the COCO per-keypoint
  sigmas (:data:`perception_pkg.pose.coco17.OKS_SIGMAS`) and OKS thresholds .50:.05:.95; at most 20
  people per image (COCO's keypoint setting). Result score per person = the estimator's pose score
  (mean keypoint score x box score).
- **PCK@alpha**: a visible ground-truth keypoint (v > 0) is correct when the prediction lies within
  ``alpha * L`` pixels of it, where the normaliser **L is the longer side of the person's ground-truth
  box**. Predicted people are matched to ground truth greedily by pose score, each taking the
  unmatched ground-truth person of highest OKS (OKS > 0); the keypoints of an unmatched ground-truth
  person count as misses. **AUC** = the area under PCK(alpha) for alpha in [0, 0.5] (trapezoid over 51
  steps) divided by 0.5, so it lies in [0, 1].

Coordinates: ground truth is COCO's (keypoints on pixel centres, ``bbox`` [x, y, w, h] continuous);
boxes go to the estimator as they are (stack coordinates are continuous) and predicted keypoints are
shifted by -0.5 (:data:`perception_pkg.preprocess.affine.PIXEL_SHIFT`) to COCO's pixel-centre convention
before scoring.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.metrics.keypoints import (
    ALPHAS,
    coco_keypoint_ap,
    matched_distances,
    pck_auc,
    pck_curve,
    pck_per_keypoint,
)
from perception_pkg.pose.coco17 import KEYPOINT_NAMES, NUM_KEYPOINTS, OKS_SIGMAS
from perception_pkg.preprocess.affine import PIXEL_SHIFT

PCK_REF_ALPHA = 0.2


@dataclass
class EvalFrame:
    """One image to score: its COCO ground-truth annotations and the person boxes to crop (stack
    coordinates, xyxy; ignored by bottom-up models)."""

    image_id: int
    image: NDArray[np.uint8]  # BGR
    annotations: list[dict[str, Any]]
    boxes: NDArray[np.float64]
    box_scores: NDArray[np.float64]
    file_name: str = ""


# --- sources ----------------------------------------------------------------------------------------


def xywh_to_xyxy(b: Any) -> NDArray[np.float64]:
    a = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([a[:, :2], a[:, :2] + a[:, 2:]], axis=1)


def person_category(gt: dict[str, Any]) -> int:
    for c in gt.get("categories", []):
        if c.get("name") == "person":
            return int(c["id"])
    raise ValueError("ground truth has no 'person' category")


def coco_frames(
    gt: dict[str, Any],
    images_dir: str | Path,
    boxes: str = "gt",
    detections: list[dict[str, Any]] | None = None,
    detector: Any = None,
    max_images: int | None = None,
) -> Iterator[EvalFrame]:
    """Frames of a COCO keypoint set. ``boxes``: ``gt`` (ground-truth person boxes, score 1),
    ``detections`` (a COCO results list: bbox + score + image_id, person category only) or
    ``detector`` (``detector(image)`` -> DetectionResult, its 'person' rows)."""
    import cv2

    cat = person_category(gt)
    anns: dict[int, list[dict[str, Any]]] = {}
    for a in gt["annotations"]:
        if a.get("category_id", cat) == cat:
            anns.setdefault(int(a["image_id"]), []).append(a)
    dets: dict[int, list[dict[str, Any]]] = {}
    for d in detections or []:
        if d.get("category_id", cat) == cat:
            dets.setdefault(int(d["image_id"]), []).append(d)
    root = Path(images_dir)
    for n, info in enumerate(sorted(gt["images"], key=lambda i: i["id"])):
        if max_images is not None and n >= max_images:
            break
        path = root / info["file_name"]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read image {path}")
        img_id = int(info["id"])
        mine = anns.get(img_id, [])
        if boxes == "gt":
            rows = [a for a in mine if not a.get("iscrowd", 0)]
            b, s = xywh_to_xyxy([a["bbox"] for a in rows]), np.ones(len(rows))
        elif boxes == "detections":
            rows = dets.get(img_id, [])
            b, s = xywh_to_xyxy([d["bbox"] for d in rows]), np.array([d["score"] for d in rows], float)
        elif boxes == "detector":
            res = detector(image)
            keep = np.array([lab == "person" for lab in res.labels()], dtype=bool)
            b, s = res.detections.boxes[keep], res.detections.scores[keep]
        else:
            raise ValueError(f"boxes must be gt, detections or detector, not {boxes!r}")
        yield EvalFrame(img_id, image, mine, b, s, info["file_name"])


def people_to_annotations(people: Any, image_id: int, first_id: int) -> list[dict[str, Any]]:
    """COCO annotations from :class:`perception_pkg.msgs.PeopleArrays` (a ground-truth
    PersonArray: keypoint score 1 = visible, 0.5 = occluded, 0 = outside, as the simulator writes it).
    ``area`` is the box area (a bag carries no segmentation)."""
    anns = []
    for i in range(len(people)):
        v = np.where(people.keypoint_scores[i] >= 1.0, 2, np.where(people.keypoint_scores[i] > 0, 1, 0))
        xy = np.where(v[:, None] > 0, people.keypoints[i] - PIXEL_SHIFT, 0.0)
        x0, y0, x1, y1 = people.boxes[i].tolist()
        kps = np.concatenate([xy, v[:, None]], axis=1).reshape(-1).tolist()
        anns.append(
            {"id": first_id + i, "image_id": image_id, "category_id": 1, "iscrowd": 0,
             "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
             "keypoints": kps, "num_keypoints": int((v > 0).sum())}
        )  # fmt: skip
    return anns


def bag_frames(
    bag: str | Path,
    image_topic: str = "/camera/image_raw",
    people_topic: str = "/ground_truth/people",
    boxes: str = "gt",
    detections_topic: str = "/ground_truth/detections_2d",
    detector: Any = None,
    max_images: int | None = None,
) -> Iterator[EvalFrame]:
    """Frames of a bag: images paired with ground-truth PersonArrays by stamp. ``boxes``: ``gt`` (the
    people's own boxes), ``detections`` (a Detection2DArray topic, class 'person') or ``detector``."""
    from perception_pkg.datasets.recordings import open_recording
    from perception_pkg.evaluation.sources import bgr_image, messages_by_stamp
    from perception_pkg.msgs import detections_to_person_boxes, person_array_to_arrays

    topics = {image_topic, people_topic} | ({detections_topic} if boxes == "detections" else set())
    n = next_ann = 0
    with open_recording(bag) as reader:  # rosbag2 or ROS 1
        reader.require(topics)
        try:
            for stamp, got, _ in messages_by_stamp(reader, topics):
                image = bgr_image(got[image_topic])
                people = person_array_to_arrays(got[people_topic])
                anns = people_to_annotations(people, n, next_ann + 1)
                next_ann += len(anns)
                if boxes == "gt":
                    b, s = people.boxes, np.ones(len(people))
                elif boxes == "detections":
                    b, s = detections_to_person_boxes(got[detections_topic])
                else:
                    res = detector(image)
                    keep = np.array([lab == "person" for lab in res.labels()], dtype=bool)
                    b, s = res.detections.boxes[keep], res.detections.scores[keep]
                yield EvalFrame(n, np.ascontiguousarray(image), anns, b, s, f"{stamp}")
                n += 1
                if max_images is not None and n >= max_images:
                    return
        finally:
            reader.warn_malformed()


# --- metrics ----------------------------------------------------------------------------------------


@dataclass
class PckAccumulator:
    """Matched keypoint distances and normalisers over all images (see the module docstring)."""

    dist: list[NDArray[np.float64]] = field(default_factory=list)  # (G, K) per image; inf = missed
    vis: list[NDArray[np.bool_]] = field(default_factory=list)
    norm: list[NDArray[np.float64]] = field(default_factory=list)

    def add(self, annotations: list[dict[str, Any]], pred_xy: NDArray, pred_scores: NDArray) -> None:
        gts = [a for a in annotations if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0]
        if not gts:
            return
        kp = np.array([a["keypoints"] for a in gts], dtype=np.float64).reshape(len(gts), NUM_KEYPOINTS, 3)
        area = np.array([a["area"] for a in gts], dtype=np.float64)
        self.dist.append(matched_distances(pred_xy, pred_scores, kp[..., :2], kp[..., 2], area))
        self.vis.append(kp[..., 2] > 0)
        self.norm.append(np.array([max(a["bbox"][2], a["bbox"][3]) for a in gts], dtype=np.float64))

    def result(self, alphas: NDArray = ALPHAS) -> dict[str, Any]:
        if not self.dist:
            return {"alphas": alphas.tolist(), "pck": [0.0] * len(alphas), "auc": 0.0, "keypoints": 0}
        dist = np.concatenate(self.dist)
        vis = np.concatenate(self.vis)
        norm = np.concatenate(self.norm)
        pck = pck_curve(dist, norm, vis, alphas)
        per_kp = pck_per_keypoint(dist, norm, vis, alphas)  # (A, K)
        ref = int(np.argmin(np.abs(alphas - PCK_REF_ALPHA)))
        at = {f"pck@{a:g}": float(pck[int(np.argmin(np.abs(alphas - a)))]) for a in (0.05, 0.1, 0.2, 0.5)}
        return {
            "normaliser": "longer side of the ground-truth person box",
            "alphas": alphas.tolist(),
            "pck": pck.tolist(),
            "auc": pck_auc(pck, alphas),
            **at,
            "per_keypoint_alpha": float(alphas[ref]),
            "per_keypoint": dict(zip(KEYPOINT_NAMES, per_kp[ref].tolist(), strict=True)),
            "keypoints": int(vis.sum()),
        }


def keypoint_results(result: Any, image_id: int, category_id: int) -> list[dict[str, Any]]:
    """COCO keypoint results (pixel-centre coordinates) of one :class:`PoseResult`."""
    xy = result.keypoints - PIXEL_SHIFT
    # an explicit width: reshape(0, -1) is ambiguous and raises on a frame where nobody was found
    kps = np.concatenate([xy, result.scores[..., None]], axis=-1).reshape(len(result), 3 * xy.shape[1])
    return [
        {"image_id": image_id, "category_id": category_id, "keypoints": k, "score": float(s)}
        for k, s in zip(kps.tolist(), result.person_scores.tolist(), strict=True)
    ]


def evaluate(
    estimator: Any,
    frames: Iterable[EvalFrame],
    *,
    min_box_score: float = 0.0,
    categories: list[dict[str, Any]] | None = None,
    source: str = "",
    boxes: str = "",
) -> dict[str, Any]:
    """Run ``estimator`` (a :class:`perception_pkg.pose.PoseEstimator`) on every frame and score it."""
    cat = 1
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    pck = PckAccumulator()
    stages: dict[str, list[float]] = {}
    t_start = time.perf_counter()
    for fr in frames:
        h, w = fr.image.shape[:2]
        images.append({"id": fr.image_id, "width": w, "height": h, "file_name": fr.file_name})
        anns += fr.annotations
        keep = fr.box_scores >= min_box_score
        res = estimator(fr.image, fr.boxes[keep], fr.box_scores[keep])
        for k, v in res.timings.items():
            stages.setdefault(k, []).append(v)
        results += keypoint_results(res, fr.image_id, cat)
        pck.add(fr.annotations, res.keypoints - PIXEL_SHIFT, res.person_scores)
    gt = {
        "images": images,
        "annotations": anns,
        "categories": categories or [{"id": cat, "name": "person", "keypoints": list(KEYPOINT_NAMES)}],
    }
    return {
        "source": source,
        "model": getattr(getattr(estimator, "card", None), "name", ""),
        "boxes": boxes if getattr(estimator, "top_down", True) else "model (bottom-up)",
        "images": len(images),
        "people_gt": sum(1 for a in anns if a.get("num_keypoints", 0) > 0 and not a.get("iscrowd", 0)),
        "people_predicted": len(results),
        "coco_keypoints": coco_keypoint_ap(gt, results),
        "oks_sigmas": OKS_SIGMAS.tolist(),
        "pck": pck.result(),
        "timings_ms_median": {k: round(float(np.median(v)) * 1e3, 3) for k, v in stages.items()},
        "wall_s": round(time.perf_counter() - t_start, 3),
        "_results": results,
    }


def summary_lines(report: dict[str, Any]) -> list[str]:
    c, p = report["coco_keypoints"], report["pck"]
    return [
        f"{report['source']}: {report['images']} images, {report['people_gt']} people, "
        f"model {report['model']}, boxes: {report['boxes']}",
        f"COCO keypoint AP {c['AP'] * 100:.1f}  AP50 {c['AP50'] * 100:.1f}  AP75 {c['AP75'] * 100:.1f}  "
        f"AR {c['AR'] * 100:.1f}   (pycocotools, OKS sigmas of COCO)",
        f"PCK@0.1 {p.get('pck@0.1', 0) * 100:.1f}  PCK@0.2 {p.get('pck@0.2', 0) * 100:.1f}  "
        f"AUC[0,0.5] {p['auc'] * 100:.1f}   (normaliser: GT box longer side)",
    ]


def write_report(report: dict[str, Any], out: str | Path, plots: bool = True) -> dict[str, Path]:
    """``out/pose_report.json``, ``out/pose_keypoints.json`` (COCO results) and the plots."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    body = {k: v for k, v in report.items() if not k.startswith("_")}
    written = {"report": out / "pose_report.json", "results": out / "pose_keypoints.json"}
    written["report"].write_text(json.dumps(body, indent=2))
    written["results"].write_text(json.dumps(report.get("_results", [])))
    if plots:
        from perception_pkg.evaluation.pose_plots import plot_pose_report

        written.update(plot_pose_report(body, out))
    return written
