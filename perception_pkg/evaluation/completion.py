"""``perception eval completion``: SoftPoolNet against baselines on held-out simulator cars, KITTI-style
Fidelity and Consistency, and real LiDAR (KITTI frames, the PCN demo car), as JSON plus plots.

Synthetic (held-out scene seeds, never used in training or model choice), in the PCN object frame of
each ground-truth box (a car's length is 1), against its 2,048 outer-surface samples:

- methods: ``model`` (the card's network), ``identity`` (the partial input itself), ``mirror`` (the
  input plus its reflection across the long axis, y -> -y), ``box_surface`` (2,048 points uniform on
  the ground-truth box's faces) and ``oracle`` (2,048 of an independent 16,384-point sampling of the
  true shape: the floor any sampled completion hits);
- metrics (``metrics/completion.py``): CD_PCN x10^3 (unsquared, halved sum of the two means), CD-L2
  x10^3 (squared), EMD x10^2 at 1,024 points (both sets resampled to 1,024, exact assignment; on the
  first ``emd_limit`` objects, as the solver takes ~0.2 s a pair), F-score@0.01;
- per class (cars: the model is a car model) and per visibility bucket (points in the box);
- Fidelity (mean input -> output nearest distance) and Consistency (CD_PCN between completions of one
  object in consecutive frames, from a separate sequence set at 10 Hz), normalised and in metres.

Real LiDAR: the KITTI frames' Car labels (camera rect frame, through R0_rect and Tr_velo_to_cam into
the velodyne frame), cut and normalised like the node does; the PCN demo car (already normalised; PCN's
axes are x length, y up, z width, swapped into ours). Fidelity and bird's-eye / side-view pictures.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perception_pkg.completion.extract import points_in_boxes
from perception_pkg.completion.frame import Boxes
from perception_pkg.completion.sampling import resample
from perception_pkg.evaluation.completion_data import Pairs
from perception_pkg.metrics.completion import all_metrics, chamfer_pcn, emd, fidelity

METHODS = ("model", "identity", "mirror", "box_surface", "oracle")
BUCKETS = ((10, 50), (50, 200), (200, 1000), (1000, 10**9))


def bucket_name(lo: int, hi: int) -> str:
    return f"{lo}+" if hi >= 10**9 else f"{lo}-{hi - 1}"


def box_surface_points(half: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points uniform (by area) on the faces of the axis-aligned box with half-sizes ``half``."""
    hx, hy, hz = half
    areas = np.array([hy * hz, hy * hz, hx * hz, hx * hz, hx * hy, hx * hy])
    face = rng.choice(6, n, p=areas / areas.sum())
    u = rng.uniform(-1, 1, (n, 3)) * half
    axis = face // 2
    sign = np.where(face % 2 == 0, -1.0, 1.0)
    u[np.arange(n), axis] = sign * half[axis]
    return u


def baselines(pairs: Pairs, k: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    part = pairs.partial(k).astype(np.float64)
    mirror = np.concatenate([part, part * [1.0, -1.0, 1.0]])
    b = pairs.boxes[k].astype(np.float64)
    half = b[3:6] / 2 / b[3]  # the box in its own normalised frame
    return {
        "identity": part,
        "mirror": mirror,
        "box_surface": box_surface_points(half, 2048, rng),
        "oracle": pairs.gt_alt[k].astype(np.float64),
    }


@dataclass
class Scores:
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        self.rows.append(row)

    def table(self, method: str, where=lambda r: True) -> dict[str, float]:
        sel = [r for r in self.rows if r["method"] == method and where(r)]
        if not sel:
            return {"n": 0}
        out: dict[str, Any] = {"n": len(sel)}
        for key, scale in (("cd_pcn", 1e3), ("cd_l2", 1e3), ("fscore", 1.0)):
            out[f"{key}{'_x1e3' if scale == 1e3 else ''}"] = float(np.mean([r[key] for r in sel]) * scale)
        emds = [r["emd"] for r in sel if r.get("emd") is not None]
        if emds:
            out["emd_x1e2"] = float(np.mean(emds) * 1e2)
            out["emd_n"] = len(emds)
        return out


def evaluate_synthetic(
    pairs: Pairs, complete, *, emd_limit: int = 150, seed: int = 0, batch: int = 32
) -> tuple[dict[str, Any], np.ndarray]:
    """Scores of every method on ``pairs``; ``complete(list of (P, 3)) -> (K, 2048, 3)`` is the model
    (object frame in, object frame out). Returns the report and the model's completions."""
    rng = np.random.default_rng(seed)
    outs = []
    t0 = time.perf_counter()
    for s in range(0, len(pairs), batch):
        outs.append(complete([pairs.partial(k) for k in range(s, min(len(pairs), s + batch))]))
    t_model = time.perf_counter() - t0
    completions = np.concatenate(outs) if outs else np.zeros((0, 2048, 3), np.float32)
    scores = Scores()
    fid = []
    for k in range(len(pairs)):
        gt = pairs.gt[k].astype(np.float64)
        preds = {"model": completions[k].astype(np.float64), **baselines(pairs, k, rng)}
        gt_emd = resample(gt, 1024, rng)
        for method, pred in preds.items():
            m = all_metrics(pred, gt, d=0.01)
            m["emd"] = emd(resample(pred, 1024, rng), gt_emd) if k < emd_limit else None
            scores.add(method=method, k=k, cls=str(pairs.cls[k]), n_points=int(pairs.n_points[k]), **m)
        fid.append(fidelity(pairs.partial(k), completions[k]))
    lengths = pairs.boxes[:, 3].astype(np.float64)
    report: dict[str, Any] = {
        "objects": len(pairs),
        "skipped_few_points": int(pairs.skipped),
        "model_seconds": t_model,
        "overall": {m: scores.table(m) for m in METHODS},
        "per_class": {
            c: {m: scores.table(m, lambda r, c=c: r["cls"] == c) for m in METHODS}
            for c in sorted(set(pairs.cls))
        },
        "per_visibility": {
            bucket_name(lo, hi): {
                m: scores.table(m, lambda r, lo=lo, hi=hi: lo <= r["n_points"] < hi) for m in METHODS
            }
            for lo, hi in BUCKETS
        },
        "fidelity": {"normalised": float(np.mean(fid)), "metres": float(np.mean(np.asarray(fid) * lengths))},
    }
    return report, completions


def consistency(pairs: Pairs, completions: np.ndarray) -> dict[str, Any]:
    """CD_PCN between completions of the same object (scene, object id) in consecutive frames."""
    index = {
        (int(s), int(o), int(f)): k
        for k, (s, o, f) in enumerate(zip(pairs.scene, pairs.object_id, pairs.frame, strict=True))
    }
    cds, cds_m = [], []
    for (s, o, f), k in index.items():
        j = index.get((s, o, f + 1))
        if j is None:
            continue
        cd = chamfer_pcn(completions[k], completions[j])
        cds.append(cd)
        cds_m.append(cd * 0.5 * float(pairs.boxes[k, 3] + pairs.boxes[j, 3]))
    return {
        "pairs": len(cds),
        "normalised": float(np.mean(cds)) if cds else None,
        "metres": float(np.mean(cds_m)) if cds else None,
    }


# --- real LiDAR ---------------------------------------------------------------------------------------


def kitti_car_boxes(label: Path, calib: Path) -> Boxes:
    """The Car labels of a KITTI frame as level boxes in the velodyne frame."""
    from perception_pkg.datasets.kitti import read_calib, read_labels

    boxes, _ = read_labels(label, ("Car",))
    cal = read_calib(calib)
    r0 = np.eye(4)
    r0[:3, :3] = cal["R0_rect"]
    tr = np.eye(4)
    tr[:3, :4] = cal["Tr_velo_to_cam"]
    t_velo_rect = np.linalg.inv(r0 @ tr)
    centres, sizes, yaws = [], [], []
    for x, y, z, h, w, length, ry in boxes:
        c_rect = np.array([x, y - h / 2, z, 1.0])
        heading_rect = np.array([np.cos(ry), 0.0, -np.sin(ry)])
        c = t_velo_rect @ c_rect
        hd = t_velo_rect[:3, :3] @ heading_rect
        centres.append(c[:3])
        sizes.append([length, w, h])
        yaws.append(np.arctan2(hd[1], hd[0]))
    n = len(centres)
    return Boxes.from_yaw(
        np.reshape(centres, (n, 3)), np.reshape(sizes, (n, 3)), np.asarray(yaws), ["car"] * n
    )


def evaluate_kitti(
    root: Path, complete, *, grow: float, ground_margin: float, min_points: int
) -> list[dict[str, Any]]:
    """Every Car of the KITTI frames under ``root`` (training/{velodyne,label_2,calib}): points, completion
    (velodyne frame), Fidelity (metres and normalised)."""
    out = []
    for velo in sorted((root / "velodyne").glob("*.bin")):
        name = velo.stem
        xyz = np.fromfile(velo, dtype=np.float32).reshape(-1, 4)[:, :3]
        boxes = kitti_car_boxes(root / "label_2" / f"{name}.txt", root / "calib" / f"{name}.txt")
        if len(boxes) == 0:
            out.append({"frame": name, "cars": 0})
            continue
        ext = points_in_boxes(xyz, boxes, grow=grow, ground_margin=ground_margin)
        frames = boxes.frames()
        for i, idx in enumerate(ext.indices):
            row: dict[str, Any] = {"frame": name, "car": i, "points": len(idx),
                                   "distance_m": float(np.linalg.norm(boxes.centres[i][:2]))}  # fmt: skip
            if len(idx) < min_points:
                row["skipped"] = f"fewer than {min_points} points"
                out.append(row)
                continue
            local = frames.to_object(xyz[idx], i)
            done = complete([local])[0]
            world = frames.to_sensor(done.astype(np.float64), i)
            row.update(
                finite=bool(np.isfinite(done).all()),
                fidelity_normalised=fidelity(local, done),
                fidelity_m=fidelity(xyz[idx], world),
                input_local=local.tolist(),
                completed_local=done.tolist(),
            )
            out.append(row)
    return out


def read_pcd_ascii(path: Path) -> np.ndarray:
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("DATA")) + 1
    return np.loadtxt(lines[start:], dtype=np.float64).reshape(-1, 3)


def evaluate_pcn_demo(path: Path, complete) -> dict[str, Any]:
    """The PCN demo car (normalised already; PCN axes x length, y up, z width -> ours x, y width, z up)."""
    pcn = read_pcd_ascii(path)
    local = pcn[:, [0, 2, 1]]
    done = complete([local])[0]
    return {
        "points": len(local),
        "finite": bool(np.isfinite(done).all()),
        "fidelity_normalised": fidelity(local, done),
        "input_local": local.tolist(),
        "completed_local": done.tolist(),
    }


def summary_table(report: dict[str, Any]) -> str:
    lines = ["method        n    CD_PCNx1e3  CD-L2x1e3  EMDx1e2(n)    F@0.01"]
    for m in METHODS:
        t = report["overall"][m]
        e = f"{t['emd_x1e2']:.2f}({t['emd_n']})" if "emd_x1e2" in t else "-"
        lines.append(
            f"{m:12s} {t['n']:4d}  {t['cd_pcn_x1e3']:10.2f}  {t['cd_l2_x1e3']:9.3f}  {e:>11s}  "
            f"{t['fscore']:8.3f}"
        )
    lines.append("CD_PCN x1e3 by points in the box: " + ", ".join(
        f"{b}: model {v['model'].get('cd_pcn_x1e3', float('nan')):.1f} / mirror "
        f"{v['mirror'].get('cd_pcn_x1e3', float('nan')):.1f}"
        f" / box {v['box_surface'].get('cd_pcn_x1e3', float('nan')):.1f} (n {v['model']['n']})"
        for b, v in report["per_visibility"].items()
    ))  # fmt: skip
    return "\n".join(lines)


def write_report(out: Path, report: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "completion_report.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    return path
