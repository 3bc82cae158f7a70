"""The stop criterion of the recurrent pose model, measured: predicted vs true person count (mean absolute
error, confusion by count) and OKS AP, for each stop threshold omega (the paper's 0.1 / 0.27 / 0.5).

    python -m perception_pkg.training.pose_rnn_eval out/heldout_pose/dataset --out out/pose_rnn_counts

"True count" is the number of annotated people the model is trained to find (the target rule of
:mod:`.pose_rnn_data`: modal box >= 24 px tall at 640x480, >= 150 visible px, >= 6 labelled keypoints,
at most 12 per frame); the count over every annotated person is reported beside it, since tiny people
far down the street are in the ground truth but not in the targets. AP is the same
``perception eval pose`` computation (pycocotools, every annotated person). numpy + onnxruntime only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.training.pose_rnn_data import (
    MAX_TARGETS,
    TARGET_MIN_HEIGHT,
    TARGET_MIN_KEYPOINTS,
    TARGET_MIN_VISIBLE,
)

OMEGAS = (0.1, 1.0 / (1.0 + float(np.exp(1.0))), 0.5)


def target_count(annotations: list[dict[str, Any]]) -> int:
    n = sum(
        1
        for a in annotations
        if a["bbox"][3] >= TARGET_MIN_HEIGHT
        and a.get("area", 0) >= TARGET_MIN_VISIBLE
        and a.get("num_keypoints", 0) >= TARGET_MIN_KEYPOINTS
    )
    return min(n, MAX_TARGETS)


def count_stats(true: NDArray, pred: NDArray, top: int = 12) -> dict[str, Any]:
    """MAE, bias, exact-rate and the confusion matrix (rows true count, columns predicted; counts above
    ``top`` share the last bin)."""
    t = np.asarray(true, np.int64)
    p = np.asarray(pred, np.int64)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"true and predicted counts must be equal-length vectors, got {t.shape}, {p.shape}")
    conf = np.zeros((top + 1, top + 1), np.int64)
    np.add.at(conf, (np.minimum(t, top), np.minimum(p, top)), 1)
    return {
        "frames": len(t),
        "mae": float(np.abs(p - t).mean()) if len(t) else 0.0,
        "bias": float((p - t).mean()) if len(t) else 0.0,
        "exact": float((p == t).mean()) if len(t) else 0.0,
        "confusion": conf.tolist(),
    }


def with_omega(card: Any, omega: float) -> Any:
    params = {**card.decoder.params, "omega": float(omega)}
    return dataclasses.replace(card, decoder=dataclasses.replace(card.decoder, params=params))


def evaluate_omegas(
    dataset: Path, card_path: Path, omegas: tuple[float, ...] = OMEGAS, max_images: int | None = None
) -> dict[str, Any]:
    from perception_pkg.cards import load_card
    from perception_pkg.evaluation import pose as ev
    from perception_pkg.pose import PoseEstimator

    gt = json.loads((dataset / "annotations" / "keypoints.json").read_text())
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in gt["annotations"]:
        by_image.setdefault(int(a["image_id"]), []).append(a)
    image_ids = [int(i["id"]) for i in sorted(gt["images"], key=lambda i: i["id"])][:max_images]
    true_t = np.array([target_count(by_image.get(i, [])) for i in image_ids])
    true_all = np.array([len(by_image.get(i, [])) for i in image_ids])
    base = load_card(card_path)
    out: dict[str, Any] = {"dataset": str(dataset), "card": str(card_path), "omegas": {}}
    for omega in omegas:
        est = PoseEstimator(with_omega(base, omega), backend="onnxruntime", threads=1)
        frames = ev.coco_frames(gt, dataset, "gt", None, None, max_images)
        report = ev.evaluate(est, frames, categories=gt.get("categories"), source=str(dataset), boxes="model")
        pred = np.zeros(len(image_ids), np.int64)
        index = {img: k for k, img in enumerate(image_ids)}
        for r in report["_results"]:
            pred[index[int(r["image_id"])]] += 1
        out["omegas"][f"{omega:.2f}"] = {
            "omega": omega,
            "ap": report["coco_keypoints"]["AP"],
            "coco_keypoints": report["coco_keypoints"],
            "vs_targets": count_stats(true_t, pred),
            "vs_all_annotated": {
                k: v for k, v in count_stats(true_all, pred, 30).items() if k != "confusion"
            },
            "people_predicted": int(pred.sum()),
        }
    out["true_targets"] = int(true_t.sum())
    out["true_annotated"] = int(true_all.sum())
    return out


def summary(res: dict[str, Any]) -> list[str]:
    lines = [f"{res['dataset']}: {res['true_targets']} target people ({res['true_annotated']} annotated)"]
    for key, r in res["omegas"].items():
        c = r["vs_targets"]
        lines.append(
            f"omega {key}: AP {r['ap']:.3f}  predicted {r['people_predicted']}  count MAE {c['mae']:.2f} "
            f"(bias {c['bias']:+.2f}, exact {c['exact']:.2f})  "
            f"vs all annotated MAE {r['vs_all_annotated']['mae']:.2f}"
        )
    key = f"{OMEGAS[1]:.2f}"
    conf = np.asarray(res["omegas"][key]["vs_targets"]["confusion"])
    used = np.flatnonzero(conf.sum(0) + conf.sum(1))
    lo, hi = int(used.min()), int(used.max())
    lines.append(
        f"confusion at omega {key} (rows: true target count {lo}..{hi}, columns: predicted {lo}..{hi})"
    )
    lines += [f"  {t:2d}: " + " ".join(f"{v:3d}" for v in conf[t, lo : hi + 1]) for t in range(lo, hi + 1)]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path, help="a perception sim dataset folder (annotations/keypoints.json)")
    ap.add_argument("--card", type=Path, default=None, help="default models/sim_pose_rnn/card.yaml")
    ap.add_argument("--omegas", type=float, nargs="+", default=list(OMEGAS))
    ap.add_argument("--max-images", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="write counts.json here")
    a = ap.parse_args(argv)
    if not (a.dataset / "annotations" / "keypoints.json").is_file():
        print(f"pose_rnn_eval: no annotations/keypoints.json in {a.dataset}")
        return 2
    from perception_pkg.paths import models_dir

    card = a.card or models_dir() / "sim_pose_rnn" / "card.yaml"
    res = evaluate_omegas(a.dataset, card, tuple(a.omegas), a.max_images)
    print("\n".join(summary(res)))
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "counts.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
