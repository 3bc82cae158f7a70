"""Run the detection node's replay path over the real images in ../shared/assets and say what it sees.

No accuracy bar (the shipped model is trained on the simulator): the point is that real COCO, KITTI and
adverse-weather photos go through message conversion, inference, decoding, the 3D solve (KITTI frames
carry their P2 as CameraInfo) and message building, and come out finite and inside the image. For
KITTI, each labelled Car is paired with the nearest 3D detection (BEV centre distance) for orientation.

    python benchmarks/detect_assets.py [--card CARD] [--out out/detect_assets]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from perception_pkg.datasets import kitti
from perception_pkg.msgs import (
    MessageFactory,
    array_to_image,
    detection2d_array_to_xyxy,
    detection3d_array_to_kitti,
    make_header,
    model_to_camera_info,
)
from perception_pkg.paths import assets_dir
from perception_pkg.replay.routing import routed


def run(card: str | None, out: Path) -> dict[str, Any]:
    root = assets_dir()
    if root is None:
        raise SystemExit("no assets: set PERCEPTION_ASSETS or place them in ../shared/assets")
    types = MessageFactory.rosbags()
    params = {"replay_annotated": True} | ({"model_card": card} if card else {})
    pipe = routed("detection", params, types)
    images = sorted((root / "coco").glob("*.jpg")) + sorted((root / "weather").glob("*.*"))
    images += sorted((root / "kitti" / "training" / "image_2").glob("*.png"))
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    for i, path in enumerate(images):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        stamp = 1_700_000_000_000_000_000 + i * 100_000_000
        header = make_header(types, stamp, "camera")
        outputs = []
        is_kitti = "kitti" in path.parts
        if is_kitti:
            cam = kitti.camera_model(path.parents[1] / "calib" / f"{path.stem}.txt", bgr.shape[:2])
            outputs += pipe.on_message(
                pipe.topic("camera_info"), model_to_camera_info(cam, header, types), stamp
            )
        outputs += pipe.on_message(pipe.topic("image"), array_to_image(bgr, "bgr8", header, types), stamp)
        outputs += pipe.finish()
        msgs = dict(outputs)
        boxes, scores, labels = detection2d_array_to_xyxy(msgs[pipe.topic("detections_2d")])
        h, w = bgr.shape[:2]
        entry: dict[str, Any] = {
            "size": [w, h],
            "detections": {c: labels.count(c) for c in sorted(set(labels))},
            "finite": bool(np.isfinite(boxes).all() and np.isfinite(scores).all()),
            "inside": bool(((boxes >= -0.5) & (boxes[:, [2, 3, 2, 3]] <= [w, h, w, h])).all()),
            "best_scores": sorted(np.round(scores, 2).tolist(), reverse=True)[:5],
        }
        if is_kitti and pipe.topic("detections_3d") in msgs:
            b3, _, l3, _ = detection3d_array_to_kitti(msgs[pipe.topic("detections_3d")])
            entry["boxes3d"] = np.round(b3, 2).tolist()
            entry["labels3d"] = list(l3)
            gt, _ = kitti.read_labels(path.parents[1] / "label_2" / f"{path.stem}.txt")
            cars = b3[np.array(l3) == "car"] if len(l3) else np.zeros((0, 7))
            pairs = []
            for g in gt:
                if len(cars):
                    d = np.hypot(cars[:, 0] - g[0], cars[:, 2] - g[2])
                    j = int(d.argmin())
                    pairs.append({
                        "label_xz": g[[0, 2]].round(2).tolist(),
                        "nearest_xz": cars[j, [0, 2]].round(2).tolist(),
                        "bev_distance_m": round(float(d[j]), 2),
                    })  # fmt: skip
            entry["kitti_cars"] = pairs
        if pipe.topic("annotated") in msgs:
            ann = msgs[pipe.topic("annotated")]
            img = np.frombuffer(ann.data, np.uint8).reshape(ann.height, ann.width, 3)
            cv2.imwrite(str(out / f"{path.stem}.jpg"), img)
        report[str(path.relative_to(root))] = entry
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--card", default=None, help="detector card (default: the shipped one)")
    p.add_argument("--out", type=Path, default=Path("out/detect_assets"))
    a = p.parse_args()
    for name, entry in run(a.card, a.out).items():
        print(name, json.dumps({k: v for k, v in entry.items() if k != "boxes3d"}))


if __name__ == "__main__":
    main()
