"""Pose decoder comparison on held-out synthetic people: OKS AP and PCK per decoder and resolution.

    python benchmarks/pose_decoder_table.py [--models models/sim_pose] [--json out/pose_decoder_table.json]
        [--write-default]

For every ``models/sim_pose/model_<HxW>.onnx`` (one trained network, three heads) the held-out crops are
run through onnxruntime via the card's engine (the same crops ``ModelRunner`` makes: ground-truth boxes,
topdown crop, ImageNet normalisation), and every decoder reads the same outputs: argmax + quarter shift,
argmax + RSN post-processing (blur, flip average with a second pass on the mirrored crop, quarter shift),
integral soft-argmax, mass displacement with additive and noisy-OR voting (bilinear kernel, d = eps_c).
Protocol and metric definitions: ``perception_pkg/training/pose_metrics.py``. Prints a markdown table,
writes JSON; ``--write-default`` rewrites ``card.yaml`` as a copy of the best card (highest OKS AP).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from perception_pkg.cards.loader import load_card
from perception_pkg.engines.base import Engine
from perception_pkg.engines.select import load_engine
from perception_pkg.training.pose_data import get_set, heldout_spec
from perception_pkg.training.pose_metrics import VARIANT_ORDER, evaluate_infer

LABELS = {
    "argmax": "argmax + quarter",
    "argmax_rsn": "argmax + RSN (blur, flip, quarter)",
    "integral": "integral soft-argmax",
    "md_additive": "mass displacement, additive",
    "md_noisy_or": "mass displacement, noisy-OR",
}


def engine_infer(engine: Engine) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    return lambda x: engine.infer({"input": x})


def evaluate_folder(folder: Path, heldout_scenes: int, threads: int) -> list[dict]:
    rows = []
    for onnx in sorted(folder.glob("model_*.onnx")):
        m = re.fullmatch(r"model_(\d+)x(\d+)\.onnx", onnx.name)
        if not m:
            continue
        hw = (int(m.group(1)), int(m.group(2)))
        card = load_card(folder / f"card_{hw[0]}x{hw[1]}_argmax.yaml")
        engine = load_engine(card, "onnxruntime", threads=threads)
        meta = json.loads((folder / f"model_{hw[0]}x{hw[1]}.train.json").read_text())["record"]
        held = get_set(heldout_spec(heldout_scenes))
        t0 = time.perf_counter()
        res = evaluate_infer(engine_infer(engine), held, hw, float(meta["eps_c"]))
        seconds = time.perf_counter() - t0
        for variant in VARIANT_ORDER:
            if variant in res:
                rows.append(
                    {
                        "input": f"{hw[0]}x{hw[1]}",
                        "maps": f"{hw[0] // 4}x{hw[1] // 4}",
                        "decoder": variant,
                        **{k: float(v) for k, v in res[variant].items()},
                        "people": len(held),
                        "train_seconds": meta["train_seconds"],
                        "eval_seconds": round(seconds, 1),
                    }
                )
    return rows


def markdown(rows: list[dict]) -> str:
    head = "| input / maps | decoder | OKS AP | AP50 | AP75 | PCK@0.05 | PCK@0.1 | PCK AUC | mean err px |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['input']} / {r['maps']} | {LABELS[r['decoder']]} | {r['oks_ap']:.3f} | "
            f"{r['oks_ap50']:.3f} | {r['oks_ap75']:.3f} | {r['pck@0.05']:.3f} | {r['pck@0.1']:.3f} | "
            f"{r['pck_auc']:.3f} | {r['mean_err_px']:.2f} |"
        )
    return "\n".join(lines)


def write_default(folder: Path, rows: list[dict]) -> Path:
    """card.yaml := the best card (by OKS AP), with a header saying why it is the default."""
    from perception_pkg.training.pose_train import DECODER_VARIANTS

    best = max((r for r in rows if r["decoder"] in DECODER_VARIANTS), key=lambda r: r["oks_ap"])
    src = folder / f"card_{best['input']}_{best['decoder']}.yaml"
    body = "\n".join(line for line in src.read_text().splitlines() if not line.startswith("#"))
    header = (
        f"# Default top-down pose model+decoder of this stack: {best['input']} input, {best['decoder']} "
        f"(best held-out OKS AP {best['oks_ap']:.3f} in benchmarks/pose_decoder_table.py).\n"
        f"# Same as {src.name}.\n"
    )
    dst = folder / "card.yaml"
    dst.write_text(header + body + "\n")
    load_card(dst)  # still a valid card
    return dst


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=Path, default=Path("models/sim_pose"))
    parser.add_argument("--heldout-scenes", type=int, default=20)
    parser.add_argument("--json", type=Path, default=Path("out/pose_decoder_table.json"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write-default", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    rows = evaluate_folder(args.models, args.heldout_scenes, args.threads)
    if not rows:
        print(f"no model_<H>x<W>.onnx in {args.models}")
        return 1
    print(
        f"Held-out sim people (scene seeds from 100000, {rows[0]['people']} people, box height >= 40 px, "
        ">= 8 labelled keypoints), GT boxes as input; OKS AP: pycocotools, COCO sigmas, area = visible "
        "pixels; PCK normalised by max(box w, h).\n"
    )
    print(markdown(rows))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows}, indent=1))
    print(f"\nwrote {args.json}")
    if args.write_default:
        print(f"default card: {write_default(args.models, rows)}")
    best = max(r["oks_ap"] for r in rows)
    print(f"best OKS AP {best:.3f} ({'meets' if best >= 0.75 else 'BELOW'} the 0.75 bar)")
    return 0 if np.isfinite(best) else 1


if __name__ == "__main__":
    raise SystemExit(main())
