"""Figures of a pose report (matplotlib, Agg backend: files only).

- ``pose_pck.png``: PCK against alpha in [0, 0.5] (normaliser: GT box longer side), AUC in the legend;
- ``pose_per_keypoint.png``: PCK per keypoint at the report's reference alpha (0.2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: headless robot or CI
    import matplotlib.pyplot as plt

    return plt


def plot_pose_report(report: dict[str, Any], out: str | Path) -> dict[str, Path]:
    plt = _pyplot()
    out = Path(out)
    pck = report["pck"]
    paths = {"pck_curve": out / "pose_pck.png", "per_keypoint": out / "pose_per_keypoint.png"}

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    ax.plot(
        pck["alphas"], [100 * v for v in pck["pck"]], label=f"{report['model']} (AUC {100 * pck['auc']:.1f})"
    )
    ax.set_xlabel("alpha (x GT box longer side)")
    ax.set_ylabel("PCK (%)")
    ax.set_xlim(0, 0.5)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ap = report["coco_keypoints"]["AP"]
    ax.set_title(f"PCK, {report['images']} images, COCO keypoint AP {100 * ap:.1f}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(paths["pck_curve"])
    plt.close(fig)

    per = pck.get("per_keypoint", {})
    fig, ax = plt.subplots(figsize=(8.0, 4.8), dpi=100)
    ax.bar(range(len(per)), [100 * v for v in per.values()], color="tab:blue")
    ax.set_xticks(range(len(per)), list(per), rotation=60, ha="right")
    ax.set_ylabel(f"PCK@{pck.get('per_keypoint_alpha', 0.2):g} (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("PCK per keypoint")
    fig.tight_layout()
    fig.savefig(paths["per_keypoint"])
    plt.close(fig)
    return paths
