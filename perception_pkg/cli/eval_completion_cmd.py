"""``perception eval completion``: SoftPoolNet against identity / mirror / box-surface / oracle on held-out
simulator cars, Fidelity and Consistency, and real LiDAR (KITTI frames, the PCN demo car); JSON + plots.
See :mod:`perception_pkg.evaluation.completion` for the protocol."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--card", default="", help="completion card (default: models/sim_completion/card.yaml)")
    p.add_argument("--backend", default="onnxruntime", help="engine backend")
    p.add_argument("--threads", type=int, default=0, help="engine CPU threads (0: the backend's default)")
    p.add_argument("--cache", type=Path, default=Path("data/cache/completion"), help="rendered scenes, pairs")
    p.add_argument("--test-seeds", default="3000-3029", help="held-out scene seeds (never used in training)")
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--frame-step", type=int, default=15)
    p.add_argument("--sequence-seeds", default="3100-3104", help="scenes for Consistency ('' to skip)")
    p.add_argument("--sequence-frames", type=int, default=10, help="consecutive 10 Hz frames per sequence")
    p.add_argument("--emd-limit", type=int, default=150, help="objects scored with the exact EMD")
    p.add_argument("--assets", type=Path, default=None, help="real assets (default: ../shared/assets)")
    p.add_argument(
        "--kitti-min-points", type=int, default=5,
        help="KITTI cars with at least this many points are completed (the node's default is 10; the two "
        "frames' only car has 9)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("out/eval_completion"))
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--update-card", action="store_true", help="write the headline figures into the card")


def run(args: argparse.Namespace) -> int:
    from perception_pkg.completion import Completer, resolve_card
    from perception_pkg.evaluation import completion as ev
    from perception_pkg.evaluation.completion_data import build_pairs, ensure_split, parse_seeds
    from perception_pkg.paths import assets_dir
    from perception_pkg.pipelines.completion import CompletionSettings

    s = CompletionSettings()
    card = resolve_card(args.card or None)
    try:
        completer = Completer.from_card(card, args.backend, args.threads)
    except ValueError as exc:
        print(f"perception eval completion: {exc}", file=sys.stderr)
        return 2
    extract = {"grow": s.box_grow, "ground_margin": s.ground_margin, "min_points": s.min_points}
    scenes = args.cache / "scenes"
    test = build_pairs(
        ensure_split(scenes, parse_seeds(args.test_seeds), args.frames, args.frame_step),
        cache=args.cache,
        **extract,
    )
    report, completions = ev.evaluate_synthetic(test, completer.complete, emd_limit=args.emd_limit)
    report["card"] = str(card)
    report["engine"] = completer.describe()
    report["test_seeds"] = args.test_seeds
    report["extraction"] = extract
    if args.sequence_seeds:
        seq = build_pairs(
            ensure_split(scenes, parse_seeds(args.sequence_seeds), args.sequence_frames, 1),
            cache=args.cache,
            **extract,
        )
        _, seq_completions = ev.evaluate_synthetic(seq, completer.complete, emd_limit=0)
        report["consistency"] = ev.consistency(seq, seq_completions)
        report["consistency"]["sequence_seeds"] = args.sequence_seeds
        report["consistency"]["objects"] = len(seq)
    assets = args.assets or assets_dir()
    real: dict = {}
    if assets is not None and (assets / "kitti" / "training").is_dir():
        kitti_extract = {**extract, "min_points": args.kitti_min_points}
        real["kitti"] = ev.evaluate_kitti(assets / "kitti" / "training", completer.complete, **kitti_extract)
    if assets is not None and (assets / "completion" / "pcn_demo_car.pcd").is_file():
        real["pcn_demo_car"] = ev.evaluate_pcn_demo(
            assets / "completion" / "pcn_demo_car.pcd", completer.complete
        )
    report["real"] = {
        "kitti": [{k: v for k, v in r.items() if not k.endswith("_local")} for r in real.get("kitti", [])],
        "pcn_demo_car": {k: v for k, v in real.get("pcn_demo_car", {}).items() if not k.endswith("_local")},
    }
    path = ev.write_report(args.out, report)
    print(ev.summary_table(report))
    if "consistency" in report:
        c = report["consistency"]
        print(
            f"Consistency: {c['normalised']:.5f} normalised, {c['metres']:.4f} m "
            f"over {c['pairs']} frame pairs"
        )
    f = report["fidelity"]
    print(f"Fidelity (held-out synthetic): {f['normalised']:.5f} normalised, {f['metres']:.4f} m")
    for r in report["real"]["kitti"]:
        print("KITTI", r)
    if report["real"]["pcn_demo_car"]:
        print("PCN demo car", report["real"]["pcn_demo_car"])
    if not args.no_plots:
        from perception_pkg.evaluation.completion_plots import write_plots

        for name, p in write_plots(args.out, report, test, completions, real).items():
            print(f"{name}: {p}")
    if args.update_card:
        update_card(card, report)
        print(f"card updated: {card}")
    print(f"report: {path}")
    return 0


def update_card(card: Path, report: dict) -> None:
    """Write the headline figures into the card's provenance.accuracy (the rest of the card is kept)."""
    import yaml

    data = yaml.safe_load(card.read_text())
    o = report["overall"]
    acc = {
        "protocol": (
            f"perception eval completion --test-seeds {report['test_seeds']} (held-out scenes; PCN object "
            "frame of the GT box; CD_PCN = half the sum of the two mean unsquared NN distances)"
        ),
        "objects": report["objects"],
    }
    for m in ("model", "identity", "mirror", "box_surface", "oracle"):
        acc[f"cd_pcn_x1e3_{m}"] = round(o[m]["cd_pcn_x1e3"], 2)
    acc["cd_l2_x1e3_model"] = round(o["model"]["cd_l2_x1e3"], 3)
    acc["emd_x1e2_model"] = round(o["model"].get("emd_x1e2", float("nan")), 2)
    acc["fscore_0.01_model"] = round(o["model"]["fscore"], 3)
    acc["fidelity_m"] = round(report["fidelity"]["metres"], 4)
    if report.get("consistency", {}).get("normalised") is not None:
        acc["consistency_normalised"] = round(report["consistency"]["normalised"], 5)
    data.setdefault("provenance", {})["accuracy"] = acc
    header = (
        "# Written by perception train completion; accuracy by perception eval completion --update-card.\n"
    )
    card.write_text(header + yaml.safe_dump(data, sort_keys=False, width=110))
