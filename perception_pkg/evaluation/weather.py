"""``perception eval weather``: restoration quality and what it does for detection, per condition x severity.

Sources are ``perception sim`` dataset folders written with ``--weather fog,rain,snow,night --severities 1-5``
(pixel-aligned ``images/clean`` and ``images/<condition>_s<severity>``, one set of annotations). For every
condition and severity, every *method* restores the degraded frames:

- ``degraded``: nothing (the frame as the camera gives it);
- ``ours``: the shipped restorer on every frame (``models/sim_weather/card.yaml``), ``ours_gated``: the
  node's configuration (the classifier and the gate of
  :class:`~perception_pkg.pipelines.weather.WeatherSettings` unless ``gate`` says otherwise); a frame
  the gate passes is left as it is;
- the classical baselines (``clahe``, ``gamma``, ``dcp``), the curve net (``zerodce``:
  ``models/sim_weather/zerodce_card.yaml``), and any ``NAME=card.yaml`` (ablation variants).

Measured per cell and method: PSNR (``10 log10(1 / MSE)`` on [0, 1]) and SSIM (scikit-image, 11x11
Gaussian, sigma 1.5, per channel) against the clean frame; the shipped detector's AP50 per class and
mean, the TIDE breakdown at AP50 (``metrics.tide``), and the recovery ratio
``(AP_method - AP_degraded) / (AP_clean - AP_degraded)`` (None when the degradation costs nothing).
Hallucination: per frame, false positives and misses of detections scoring >= 0.3 (IoU 0.5), restored
minus degraded; the worst frames are listed (and drawn with ``plots``).

Corruption robustness (corruption_robustness.txt): P_{c,s} = mean AP50 on corruption c at severity s, mPC
the mean over corruptions and severities, rPC = mPC / P_clean, for the detector alone and with
``ours_gated`` in front. Corruptions: the dataset's conditions, plus ``extra`` imagecorruptions families
applied to the clean frames here (seeded per frame).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from perception_pkg.detection import load_detector
from perception_pkg.evaluation.detect import EvalFrame, evaluate
from perception_pkg.evaluation.run import predictions_from_result
from perception_pkg.evaluation.sources import DatasetFrames, load_dataset
from perception_pkg.weather import BASELINES, ConditionClassifier, Gate, Restorer, WeatherRestorer

log = logging.getLogger(__name__)

Image = NDArray[np.uint8]
DEFAULT_METHODS = ("ours", "ours_gated", "clahe", "gamma", "dcp", "zerodce")
EXTRA_CORRUPTIONS = ("frost", "brightness", "spatter", "contrast")
SCORE = 0.3  # detections counted in the per-frame hallucination figures


@dataclass
class Method:
    name: str
    fn: Callable[[Image], Image]
    seconds: list[float] = field(default_factory=list)
    gated: list[bool] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # the classifier's condition per frame (gated methods)

    def __call__(self, image: Image) -> Image:
        t0 = time.perf_counter()
        out = self.fn(image)
        self.seconds.append(time.perf_counter() - t0)
        return out


def build_methods(
    names: Sequence[str],
    backend: str = "onnxruntime",
    threads: int = 1,
    gate: Gate | None = None,
    model_card: str | None = None,
    classifier_card: str | None = None,
) -> list[Method]:
    """``degraded`` first, then ``names`` (see the module docstring; ``NAME=card`` for any weather card)."""
    from perception_pkg.pipelines.weather import WeatherSettings

    methods = [Method("degraded", lambda im: im)]
    for spec in names:
        name, _, card = spec.partition("=")
        if (
            name == "routed" and card
        ):  # per-condition specialists CARD_<condition>/card.yaml, by the classifier
            methods.append(_routed(card, backend, threads, gate, classifier_card))
        elif card:
            methods.append(Method(name, Restorer(card, backend=backend, threads=threads)))
        elif name in BASELINES:
            methods.append(Method(name, BASELINES[name]))
        elif name == "ours":
            methods.append(Method(name, Restorer(model_card, backend=backend, threads=threads)))
        elif name == "zerodce":
            methods.append(
                Method(name, Restorer("sim_weather/zerodce_card.yaml", backend=backend, threads=threads))
            )
        elif name == "ours_gated":
            g = gate or WeatherSettings().gate()
            wr = WeatherRestorer(
                Restorer(model_card, backend=backend, threads=threads),
                g,
                ConditionClassifier(classifier_card, backend=backend, threads=threads),
            )
            m = Method(name, lambda im: im)

            def gated(im: Image, wr: WeatherRestorer = wr, m: Method = m) -> Image:
                res = wr(im)
                m.gated.append(res.restored)
                m.labels.append(res.classification.condition if res.classification else "")
                return res.image

            m.fn = gated
            methods.append(m)
        else:
            raise ValueError(
                f"unknown method {spec!r}: ours, ours_gated, zerodce, {', '.join(BASELINES)} or NAME=card"
            )
    return methods


def _routed(
    prefix: str, backend: str, threads: int, gate: Gate | None, classifier_card: str | None
) -> Method:
    from perception_pkg.weather.conditions import ADVERSE

    experts = {
        c: Restorer(f"{prefix}_{c}/card.yaml", backend=backend, threads=threads)
        for c in ADVERSE
        if Path(f"{prefix}_{c}/card.yaml").is_file()
    }
    if not experts:
        raise ValueError(f"routed={prefix}: no {prefix}_<condition>/card.yaml")
    clf = ConditionClassifier(classifier_card, backend=backend, threads=threads)
    bar = gate.min_confidence if gate is not None else 0.5

    def route(im: Image) -> Image:
        c = clf(im)
        expert = experts.get(c.condition)
        return expert(im) if expert is not None and c.confidence >= bar else im

    return Method("routed", route)


def psnr(a: Image, b: Image) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)) / 255.0**2
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def ssim(a: Image, b: Image) -> float:
    """Mean SSIM over channels, scikit-image's definition (``structural_similarity`` with
    ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255``: an 11x11 Gaussian
    window, reflected borders, the 5-pixel border left out of the mean) computed with OpenCV's separable
    blur, about 30x faster; tests/test_evaluation_weather.py checks it against scikit-image."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = a.astype(np.float64), b.astype(np.float64)

    def blur(z: NDArray) -> NDArray:
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s_map = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s_map[5:-5, 5:-5].mean())


def _iou(a: NDArray, b: NDArray) -> NDArray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-9)


def frame_errors(frame: EvalFrame, min_height: float = 20.0, min_visible: float = 150.0) -> tuple[int, int]:
    """(false positives, misses) of one frame's detections >= SCORE at IoU 0.5, class-aware, greedy by
    score; ground truth too small or hidden is ignored (a detection on it is no false positive)."""
    gt, pred = frame.gt, frame.pred
    keep = pred.scores >= SCORE
    boxes, classes = pred.boxes[keep], pred.classes[keep]
    order = np.argsort(-pred.scores[keep])
    h = gt.boxes[:, 3] - gt.boxes[:, 1]
    ignored = (h < min_height) | (np.nan_to_num(gt.visible_pixels, nan=np.inf) < min_visible)
    used = np.zeros(len(gt.boxes), bool)
    fp = 0
    iou = _iou(boxes, gt.boxes) if len(boxes) and len(gt.boxes) else np.zeros((len(boxes), len(gt.boxes)))
    for i in order:
        cand = np.flatnonzero((gt.classes == classes[i]) & ~used & (iou[i] >= 0.5))
        if len(cand):
            j = cand[np.argmax(iou[i, cand])]
            used[j] = True
        elif not np.any((gt.classes == classes[i]) & ignored & (iou[i] >= 0.5)):
            fp += 1
    return fp, int(np.sum(~used & ~ignored))


def _det_metrics(frames: list[EvalFrame], classes: Sequence[str]) -> dict[str, Any]:
    full = evaluate(frames, classes)
    rep = full["filtered"]
    kept = full["counts"]["per_class"]
    # a class with ground truth but no detection at all has AP 0 (pycocotools leaves it out)
    per = {
        c: rep["coco"]["per_class"].get(c, {}).get("AP50", 0.0 if kept[c]["gt_kept"] else float("nan"))
        for c in classes
    }
    vals = [v for v in per.values() if v == v]
    tide = rep["tide"]
    return {
        "AP50": float(np.mean(vals)) if vals else float("nan"),
        "AP50_per_class": per,
        "tide_dAP": tide["main_dAP"],
        "tide_counts": tide["counts"],
    }


def _recovery(ap: float, ap_degraded: float, ap_clean: float) -> float | None:
    gap = ap_clean - ap_degraded
    return None if gap <= 1e-3 else (ap - ap_degraded) / gap


@dataclass
class Pool:
    """Frames of several datasets, one list per subset, sharing ground truth."""

    sets: list[DatasetFrames]
    max_frames: int | None = None

    def frames(self) -> list[tuple[str, Any, Path]]:
        out = []
        for ds in self.sets:
            for key, gt, path in zip(ds.keys, ds.gts, ds.images, strict=True):
                out.append((f"{ds.root.parent.name}/{key}", gt, path))
        return out[: self.max_frames] if self.max_frames else out


def evaluate_weather(
    datasets: Sequence[str | Path],
    methods: list[Method],
    conditions: Sequence[str] = ("fog", "rain", "snow", "night"),
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    max_frames: int | None = None,
    extra: Sequence[str] = (),
    backend: str = "onnxruntime",
    threads: int = 1,
    quality_methods: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(report, samples): the JSON report and, for plots, a few images (sample strips, worst frames)."""
    detector = load_detector(None, backend, threads=threads, lift_3d=False)
    classes = list(detector.class_names)
    clean_sets = [load_dataset(d, "clean") for d in datasets]
    pool = Pool(clean_sets, max_frames).frames()
    say = progress or (lambda _s: None)
    t0 = time.perf_counter()

    def detect(image: Image, key: str, gt: Any) -> EvalFrame:
        return EvalFrame(key, gt, predictions_from_result(detector(image)))

    clean_images = {key: cv2.imread(str(p), cv2.IMREAD_COLOR) for key, _, p in pool}
    clean_frames = [detect(clean_images[k], k, gt) for k, gt, _ in pool]
    clean = _det_metrics(clean_frames, classes)
    report: dict[str, Any] = {
        "frames": len(pool),
        "datasets": [str(d) for d in datasets],
        "classes": classes,
        "methods": [m.name for m in methods],
        "clean": clean,
        "cells": {},
        "score_for_frame_errors": SCORE,
    }
    samples: dict[str, Any] = {"strips": {}, "worst": []}
    quality = set(quality_methods) if quality_methods is not None else {m.name for m in methods}
    worst: list[tuple[int, str, str, str]] = []
    plan = [("clear", 0)] + [(c, s) for c in [*conditions, *extra] for s in severities]
    for cond, sev in plan:
        if True:
            cell_key = "clear" if cond == "clear" else f"{cond}_s{sev}"
            say(f"{cell_key} ({time.perf_counter() - t0:.0f} s)")
            if cond in extra:
                from perception_pkg.sim.weather import _corruptions, _legacy_seed, derive_seed

                def load(key: str, path: Path, cond: str = cond, sev: int = sev) -> Image:
                    _corruptions()  # imports imagecorruptions (setuptools-free), whose corrupt() converts
                    import imagecorruptions  # the input as each family needs (spatter's mud takes PIL)

                    rgb = np.ascontiguousarray(clean_images[key][..., ::-1])
                    with _legacy_seed(derive_seed(key, cond, sev)):
                        out = imagecorruptions.corrupt(rgb, corruption_name=cond, severity=sev)
                    return np.ascontiguousarray(np.clip(np.asarray(out), 0, 255).astype(np.uint8)[..., ::-1])
            else:
                subset = "clean" if cond == "clear" else f"{cond}_s{sev}"

                def load(key: str, path: Path, subset: str = subset) -> Image:
                    p = path.parent.parent / subset / path.name
                    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
                    if img is None:
                        raise FileNotFoundError(
                            f"{p}: not in the dataset (perception sim --weather/--severities)"
                        )
                    return img

            cell: dict[str, Any] = {}
            frames_by: dict[str, list[EvalFrame]] = {m.name: [] for m in methods}
            q: dict[str, dict[str, list[float]]] = {m.name: {"psnr": [], "ssim": []} for m in methods}
            cell_methods = (
                methods if cond not in extra else [m for m in methods if m.name in ("degraded", "ours_gated")]
            )
            for key, gt, path in pool:
                degraded = load(key, path)
                ref = clean_images[key]
                for m in cell_methods:
                    n_gated = len(m.gated)
                    out = m(degraded)
                    if m.name in quality and cond != "clear":
                        q[m.name]["psnr"].append(psnr(out, ref))
                        q[m.name]["ssim"].append(ssim(out, ref) if cond not in extra else float("nan"))
                    frames_by[m.name].append(detect(out, key, gt))
                    if m.gated and len(m.gated) > n_gated:
                        cell.setdefault("gate_restored", 0)
                        cell["gate_restored"] += int(m.gated[-1])
                        hist = cell.setdefault("classified", {})
                        hist[m.labels[-1]] = hist.get(m.labels[-1], 0) + 1
                if sev == 3 and cond in conditions and key == pool[0][0]:
                    samples["strips"][cond] = {"degraded": degraded, "clean": ref}
            base = None
            for m in cell_methods:
                met = _det_metrics(frames_by[m.name], classes)
                if q[m.name]["psnr"]:
                    met["psnr"] = float(np.mean(q[m.name]["psnr"]))
                    met["ssim"] = float(np.nanmean(q[m.name]["ssim"])) if cond not in extra else None
                if m.name == "degraded":
                    base = met
                    base_err = {f.key: frame_errors(f) for f in frames_by[m.name]}
                else:
                    met["recovery"] = _recovery(met["AP50"], base["AP50"], clean["AP50"])
                    errs = {f.key: frame_errors(f) for f in frames_by[m.name]}
                    d_fp = sum(errs[k][0] - base_err[k][0] for k in errs)
                    d_miss = sum(errs[k][1] - base_err[k][1] for k in errs)
                    met["frame_errors_delta"] = {"false_positives": d_fp, "misses": d_miss}
                    met["tide_delta"] = {k: met["tide_dAP"][k] - base["tide_dAP"][k] for k in ("Bkg", "Miss")}
                    if m.name in ("ours", "ours_gated") and cond in conditions:
                        for k in errs:
                            score = (errs[k][0] - base_err[k][0]) + (errs[k][1] - base_err[k][1])
                            worst.append((score, cell_key, m.name, k))
                cell[m.name] = met
            report["cells"][cell_key] = cell
            if sev == 3 and cond in samples["strips"]:
                for m in cell_methods:
                    if m.name not in ("degraded", "ours_gated"):
                        samples["strips"][cond][m.name] = m.fn(samples["strips"][cond]["degraded"])
    worst.sort(key=lambda w: -w[0])
    report["worst_frames"] = [
        {"hallucination_score": s, "cell": c, "method": m, "frame": k} for s, c, m, k in worst[:8] if s > 0
    ]
    samples["worst"] = report["worst_frames"]
    report["robustness"] = robustness(report, conditions, extra, severities)
    report["latency_ms"] = {
        m.name: {"p50": 1e3 * float(np.median(m.seconds)), "p99": 1e3 * float(np.percentile(m.seconds, 99))}
        for m in methods
        if m.seconds and m.name != "degraded"
    }
    gated = next((m for m in methods if m.name == "ours_gated"), None)
    report["rule_violations"] = rule_violations(report, [m.name for m in methods if m.name != "degraded"])
    if gated is not None:
        report["gate"] = {"restored_share": float(np.mean(gated.gated)) if gated.gated else None}
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    return report, samples


def robustness(
    report: dict[str, Any], conditions: Sequence[str], extra: Sequence[str], severities: Sequence[int]
) -> dict[str, Any]:
    """mPC and rPC of the detector alone and with ``ours_gated`` (or ``ours``) in front."""
    p_clean = report["clean"]["AP50"]
    out: dict[str, Any] = {
        "P_clean": p_clean,
        "corruptions": [*conditions, *extra],
        "severities": list(severities),
    }
    for name in ("degraded", "ours_gated", "ours"):
        vals = [
            report["cells"][f"{c}_s{s}"].get(name, {}).get("AP50")
            for c in [*conditions, *extra]
            for s in severities
        ]
        if any(v is None for v in vals):
            continue
        mpc = float(np.mean(vals))
        out["detector_alone" if name == "degraded" else f"with_{name}"] = {
            "mPC": mpc,
            "rPC": mpc / max(p_clean, 1e-9),
        }
    return out


def rule_violations(
    report: dict[str, Any], names: Sequence[str], tolerance: float = 0.0
) -> dict[str, list[str]]:
    """Cells where a method scores below not restoring (AP50 below ``degraded`` by over ``tolerance``)."""
    out: dict[str, list[str]] = {}
    for name in names:
        bad = [
            f"{k} ({c[name]['AP50'] - c['degraded']['AP50']:+.3f})"
            for k, c in report["cells"].items()
            if name in c and c[name]["AP50"] < c["degraded"]["AP50"] - tolerance
        ]
        out[name] = bad
    return out


# --------------------------------------------------------------------------------------------------
# report


def summary_table(report: dict[str, Any], methods: Sequence[str] | None = None) -> str:
    """Markdown: per cell, PSNR / SSIM / AP50 per method, recovery of ``ours_gated`` and ``ours``."""
    names = [m for m in (methods or report["methods"]) if m != "degraded"]
    head = (
        "| cell | degraded PSNR / SSIM / AP50 | "
        + " | ".join(f"{n} PSNR / SSIM / AP50 (rec.)" for n in names)
        + " |"
    )
    lines = [head, "|" + "---|" * (2 + len(names))]
    for key, cell in report["cells"].items():
        d = cell["degraded"]

        def fmt(m: dict[str, Any] | None) -> str:
            if not m:
                return "-"
            ps = f"{m['psnr']:.1f}" if m.get("psnr") is not None else "-"
            ss = f"{m['ssim']:.3f}" if m.get("ssim") is not None else "-"
            rec = m.get("recovery")
            r = f" ({rec:+.2f})" if rec is not None else ""
            return f"{ps} / {ss} / {100 * m['AP50']:.1f}{r}"

        lines.append(f"| {key} | {fmt(d)} | " + " | ".join(fmt(cell.get(n)) for n in names) + " |")
    c = report["clean"]
    lines.append(
        f"\nclean AP50 {100 * c['AP50']:.1f} ("
        + ", ".join(f"{k} {100 * v:.1f}" for k, v in c["AP50_per_class"].items())
        + "),"
        f" {report['frames']} frames"
    )
    rob = report.get("robustness", {})
    for k in ("detector_alone", "with_ours_gated", "with_ours"):
        if k in rob:
            lines.append(f"{k}: mPC {100 * rob[k]['mPC']:.1f}, rPC {rob[k]['rPC']:.3f}")
    return "\n".join(lines)


def write_report(
    report: dict[str, Any], samples: dict[str, Any], out: str | Path, plots: bool = True
) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {"report": out / "weather_report.json", "table": out / "weather_table.md"}
    written["report"].write_text(json.dumps(report, indent=1, default=float) + "\n")
    written["table"].write_text(summary_table(report) + "\n")
    if plots:
        from perception_pkg.evaluation.weather_plots import plot_weather_report

        written.update(plot_weather_report(report, samples, out))
    return written


# --------------------------------------------------------------------------------------------------
# real photographs (no ground truth)


def real_photos(
    paths: Sequence[str | Path],
    out: str | Path,
    backend: str = "onnxruntime",
    threads: int = 1,
    gate: Gate | None = None,
    model_card: str | None = None,
    classifier_card: str | None = None,
) -> dict[str, Any]:
    """Each photo restored (every frame) and as the gate decides: size, finiteness and colour checks, the
    classifier's condition, the detector's boxes (score >= 0.3) before and after, and a contact sheet
    (``out/real_photos.png``: photo | restored, boxes drawn) to look at."""
    from perception_pkg.pipelines.weather import WeatherSettings
    from perception_pkg.viz.detections import draw_detections

    detector = load_detector(None, backend, threads=threads, lift_3d=False, score_threshold=SCORE)
    restorer = Restorer(model_card, backend=backend, threads=threads)
    clf = ConditionClassifier(classifier_card, backend=backend, threads=threads)
    g = gate or WeatherSettings().gate()
    rows, entries = [], []
    for path in paths:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(path)
        c = clf(img)
        restored = restorer(img)
        before, after = detector(img), detector(restored)
        means = restored.reshape(-1, 3).mean(axis=0)
        entries.append(
            {
                "photo": Path(path).name,
                "size": list(img.shape[:2]),
                "restored_size_matches": restored.shape == img.shape,
                "finite": bool(np.isfinite(restored.astype(np.float32)).all()),
                "restored_channel_means_bgr": [round(float(m), 1) for m in means],
                "colours_sane": bool(10 < means.min() and means.max() < 245 and restored.std() > 5),
                "condition": c.condition,
                "confidence": round(c.confidence, 3),
                "gate_restores": g.decide(c),
                "boxes_before": dict(zip(*np.unique(before.labels(), return_counts=True), strict=True)),
                "boxes_after": dict(zip(*np.unique(after.labels(), return_counts=True), strict=True)),
            }
        )
        tiles = [draw_detections(img, before), draw_detections(restored, after)]
        h = 360
        tiles = [cv2.resize(t, (round(t.shape[1] * h / t.shape[0]), h)) for t in tiles]
        label = f"{Path(path).name}: {c.condition} {c.confidence:.2f}"
        cv2.putText(tiles[0], label, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 1, cv2.LINE_AA)
        cv2.putText(tiles[1], "restored (ours)", (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 1)
        rows.append(np.hstack(tiles))
    width = max(r.shape[1] for r in rows)
    sheet = np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / "real_photos.png"), sheet)
    for e in entries:
        e["boxes_before"] = {str(k): int(v) for k, v in e["boxes_before"].items()}
        e["boxes_after"] = {str(k): int(v) for k, v in e["boxes_after"].items()}
    return {"photos": entries, "sheet": str(out / "real_photos.png")}
