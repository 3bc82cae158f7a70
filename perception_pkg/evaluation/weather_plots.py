"""Plots of ``perception eval weather``: AP50 vs severity per condition, PSNR bars, a before/after strip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _cells(report: dict[str, Any]) -> dict[str, dict[int, dict[str, Any]]]:
    by: dict[str, dict[int, dict[str, Any]]] = {}
    for key, cell in report["cells"].items():
        if key == "clear":
            continue
        cond, _, sev = key.rpartition("_s")
        by.setdefault(cond, {})[int(sev)] = cell
    return by


def plot_ap_vs_severity(report: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    by = _cells(report)
    fig, axes = plt.subplots(1, len(by), figsize=(4 * len(by), 3.4), squeeze=False, sharey=True)
    for ax, (cond, cells) in zip(axes[0], by.items(), strict=True):
        sevs = sorted(cells)
        for name in report["methods"]:
            ys = [100 * cells[s][name]["AP50"] if name in cells[s] else np.nan for s in sevs]
            if all(np.isnan(ys)):
                continue
            style = {
                "degraded": dict(color="k", lw=2, ls="--"),
                "ours_gated": dict(color="tab:red", lw=2.5),
                "ours": dict(color="tab:orange", lw=1.5),
                "clahe": dict(color="tab:blue", lw=1),
                "gamma": dict(color="tab:purple", lw=1),
                "dcp": dict(color="tab:green", lw=1),
                "zerodce": dict(color="tab:brown", lw=1),
            }.get(name, dict(lw=1, alpha=0.8))
            ax.plot(sevs, ys, marker="o", label=name, **style)
        ax.axhline(100 * report["clean"]["AP50"], color="tab:green", lw=1, ls=":", label="clean")
        ax.set_title(cond)
        ax.set_xlabel("severity")
        ax.set_xticks(sevs)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("detector AP50 (mean of classes)")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_psnr_bars(report: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    keys = [k for k, c in report["cells"].items() if c["degraded"].get("ssim") is not None]
    names = [
        n
        for n in report["methods"]
        if all(report["cells"][k].get(n, {}).get("psnr") is not None for k in keys)
    ]
    fig, ax = plt.subplots(figsize=(max(8, 0.55 * len(keys) * max(len(names), 1) / 3), 3.6))
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(keys))
    for i, n in enumerate(names):
        ax.bar(x + i * width, [report["cells"][k][n]["psnr"] for k in keys], width, label=n)
    ax.set_xticks(x + 0.4 - width / 2)
    ax.set_xticklabels(keys, rotation=60, fontsize=7)
    ax.set_ylabel("PSNR vs clean (dB)")
    ax.legend(fontsize=7, ncol=len(names))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_strip(
    samples: dict[str, Any],
    path: Path,
    order: tuple[str, ...] = ("degraded", "ours", "clahe", "gamma", "dcp", "zerodce", "clean"),
) -> Path | None:
    """Rows: conditions at severity 3; columns: degraded, each method, clean (320x240 each, labelled)."""
    strips = samples.get("strips") or {}
    if not strips:
        return None
    rows = []
    for cond, images in strips.items():
        cols = []
        for name in [o for o in order if o in images]:
            tile = cv2.resize(images[name], (320, 240), interpolation=cv2.INTER_AREA)
            cv2.putText(
                tile,
                f"{cond} s3: {name}" if name == "degraded" else name,
                (6, 20),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.55,
                (0, 255, 255),
                1,
                cv2.LINE_AA,
            )
            cols.append(tile)
        rows.append(np.hstack(cols))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    cv2.imwrite(str(path), np.vstack(rows))
    return path


def plot_weather_report(report: dict[str, Any], samples: dict[str, Any], out: Path) -> dict[str, Path]:
    written = {
        "ap_vs_severity": plot_ap_vs_severity(report, out / "ap_vs_severity.png"),
        "psnr": plot_psnr_bars(report, out / "psnr.png"),
    }
    strip = write_strip(samples, out / "before_after.png")
    if strip is not None:
        written["before_after"] = strip
    return written
