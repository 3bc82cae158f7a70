"""Figures of a detection report (matplotlib, Agg backend: files only, no display needed).

- ``pr_iou50.png``: precision-recall per class at IoU 0.5 (COCO's 101 recall points), filtered solid,
  unfiltered dashed;
- ``tide.png``: TIDE dAP per error type at AP50, filtered next to unfiltered;
- ``kitti_pr.png``: interpolated precision at the 40 KITTI recall positions for AP3D and AP_BEV at each
  IoU threshold (only when the report has them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: works on a headless robot or CI runner
    import matplotlib.pyplot as plt

    return plt


def plot_pr_curves(report: dict[str, Any], path: str | Path) -> Path:
    """Precision vs recall per class at IoU 0.5; the legend carries each curve's AP50."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    recall = np.linspace(0.0, 1.0, 101)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(report["classes"]):
        colour = colours[i % len(colours)]
        for part, style in (("filtered", "-"), ("unfiltered", "--")):
            coco = report[part]["coco"]
            if name not in coco.get("pr50", {}):
                continue
            ap50 = coco["per_class"][name]["AP50"]
            ax.plot(
                recall, coco["pr50"][name], style, color=colour, label=f"{name} {part} AP50 {100 * ap50:.1f}"
            )
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="PR at IoU 0.5")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return _save(fig, plt, path)


def plot_tide(report: dict[str, Any], path: str | Path) -> Path:
    """Grouped bars of main (Cls, Loc, Both, Dupe, Bkg, Miss) and special (FP, FN) dAP."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.0), dpi=100, gridspec_kw={"width_ratios": [3, 1]})
    width = 0.38
    for ax, key in zip(axes, ("main_dAP", "special_dAP"), strict=True):
        names = list(report["filtered"]["tide"][key])
        x = np.arange(len(names))
        for k, (part, offset) in enumerate((("filtered", -width / 2), ("unfiltered", width / 2))):
            t = report[part]["tide"]
            values = [t[key][n] for n in names]
            bars = ax.bar(x + offset, values, width, label=f"{part} (AP50 {t['AP50']:.1f})", color=f"C{k}")
            ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.set_xticks(x, names)
        ax.set_ylabel("dAP (AP50 points)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_title("TIDE main errors")
    axes[1].set_title("FP / FN")
    axes[0].legend(fontsize=8)
    return _save(fig, plt, path)


def plot_kitti_pr(report: dict[str, Any], path: str | Path) -> Path | None:
    """Interpolated precision at the KITTI R40 recall positions; None when the report has no AP3D."""
    k3 = report["filtered"]["kitti3d"]
    if "pr" not in k3:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    recall = np.arange(1, 41) / 40.0
    for key, values in k3["pr"].items():
        ax.plot(recall, values, marker=".", label=f"{key} {100 * k3['AP'][key]:.1f}")
    ax.set(xlabel="recall", ylabel="interpolated precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title(f"{k3['class']}: KITTI R40 (filtered GT)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return _save(fig, plt, path)


def _save(fig: Any, plt: Any, path: str | Path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)  # a long evaluation loop must not keep figures alive
    return path


def plot_detection_report(report: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """All figures of a report into folder ``out``; returns name -> path."""
    out = Path(out)
    written = {
        "pr_curves": plot_pr_curves(report, out / "pr_iou50.png"),
        "tide": plot_tide(report, out / "tide.png"),
    }
    kitti = plot_kitti_pr(report, out / "kitti_pr.png")
    if kitti is not None:
        written["kitti_pr"] = kitti
    return written
