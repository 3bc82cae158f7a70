"""Plots of ``perception eval completion``: CD per method and visibility bucket, held-out examples and the
real scans (bird's-eye and side views of input vs completion), as PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from perception_pkg.evaluation.completion import METHODS
from perception_pkg.evaluation.completion_data import Pairs


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _views(axes, inp: np.ndarray, done: np.ndarray, gt: np.ndarray | None, title: str) -> None:
    """Bird's-eye (x, y) and side (x, z) views in the object frame."""
    for ax, (i, j, name) in zip(axes, ((0, 1, "bird's-eye (x, y)"), (0, 2, "side (x, z)")), strict=True):
        if gt is not None:
            ax.scatter(gt[:, i], gt[:, j], s=0.6, c="0.75", label="truth")
        ax.scatter(done[:, i], done[:, j], s=0.8, c="tab:blue", label="completed")
        ax.scatter(inp[:, i], inp[:, j], s=2.5, c="tab:red", label="input")
        ax.set_aspect("equal")
        ax.set_xlim(-0.65, 0.65)
        ax.set_ylim(-0.35, 0.35)
        ax.set_title(f"{title}: {name}", fontsize=8)
        ax.tick_params(labelsize=6)


def write_plots(
    out: Path, report: dict[str, Any], pairs: Pairs, completions: np.ndarray, real: dict
) -> dict[str, Path]:
    plt = _plt()
    written: dict[str, Path] = {}
    # 1. CD_PCN per method, overall and per visibility bucket
    buckets = ["all", *report["per_visibility"]]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.16
    for m_i, m in enumerate(METHODS):
        vals = [report["overall"][m].get("cd_pcn_x1e3", np.nan)]
        vals += [report["per_visibility"][b][m].get("cd_pcn_x1e3", np.nan) for b in buckets[1:]]
        ax.bar(np.arange(len(buckets)) + (m_i - 2) * width, vals, width, label=m)
    counts = [report["overall"]["model"]["n"]] + [
        report["per_visibility"][b]["model"]["n"] for b in buckets[1:]
    ]
    ax.set_xticks(
        np.arange(len(buckets)), [f"{b}\n(n={n})" for b, n in zip(buckets, counts, strict=True)], fontsize=8
    )
    ax.set_ylabel("CD_PCN x1e3 (object frame)")
    ax.set_xlabel("points in the box")
    ax.legend(fontsize=7, ncol=5)
    ax.set_title("Held-out simulator cars: completion vs baselines (lower is better)", fontsize=9)
    fig.tight_layout()
    written["cd_by_bucket"] = out / "cd_by_bucket.png"
    fig.savefig(written["cd_by_bucket"], dpi=120)
    plt.close(fig)
    # 2. examples: the median-CD object of each bucket
    rows = []
    model_rows = {r: None for r in report["per_visibility"]}
    from perception_pkg.metrics.completion import chamfer_pcn

    for b in model_rows:
        lo, hi = b.rstrip("+").split("-") if "-" in b else (b.rstrip("+"), 10**9)
        ks = [k for k in range(len(pairs)) if int(lo) <= pairs.n_points[k] <= int(hi)]
        if ks:
            cds = [chamfer_pcn(completions[k], pairs.gt[k]) for k in ks]
            rows.append((b, ks[int(np.argsort(cds)[len(cds) // 2])]))
    if rows:
        fig, axes = plt.subplots(len(rows), 2, figsize=(8, 2.2 * len(rows)), squeeze=False)
        for (_, k), ax_row in zip(rows, axes, strict=True):
            cd = chamfer_pcn(completions[k], pairs.gt[k]) * 1e3
            _views(
                ax_row, pairs.partial(k), completions[k], pairs.gt[k], f"{pairs.n_points[k]} pts, CD {cd:.1f}"
            )
        axes[0, 0].legend(fontsize=6, loc="upper right", markerscale=4)
        fig.suptitle("Held-out cars (median CD of each visibility bucket); object frame", fontsize=9)
        fig.tight_layout()
        written["examples"] = out / "examples.png"
        fig.savefig(written["examples"], dpi=120)
        plt.close(fig)
    # 3. real scans
    reals = [(f"KITTI {r['frame']} car {r['car']} ({r['points']} pts, {r['distance_m']:.0f} m)", r)
             for r in real.get("kitti", []) if "completed_local" in r]  # fmt: skip
    if real.get("pcn_demo_car"):
        reals.append((f"PCN demo car ({real['pcn_demo_car']['points']} pts)", real["pcn_demo_car"]))
    if reals:
        fig, axes = plt.subplots(len(reals), 2, figsize=(8, 2.2 * len(reals)), squeeze=False)
        for (title, r), ax_row in zip(reals, axes, strict=True):
            _views(ax_row, np.asarray(r["input_local"]), np.asarray(r["completed_local"]), None, title)
        axes[0, 0].legend(fontsize=6, loc="upper right", markerscale=4)
        fig.suptitle("Real LiDAR: input (red) vs completion (blue), object frame", fontsize=9)
        fig.tight_layout()
        written["real"] = out / "real.png"
        fig.savefig(written["real"], dpi=120)
        plt.close(fig)
    return written
