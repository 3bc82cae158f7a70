"""A detection report as text, JSON and figures: :func:`summary_table`, :func:`write_report`.

The report is the plain dict :func:`perception_pkg.evaluation.detect.evaluate` returns, with what the
caller adds (``tool``, ``model``, ``source``, ``run``); the figures are drawn by :mod:`.plots`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


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


__all__ = ["summary_table", "write_report"]
