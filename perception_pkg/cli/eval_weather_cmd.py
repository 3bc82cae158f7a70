"""``perception eval weather``: restore the degraded frames of ``perception sim`` datasets with the shipped
ForkGAN (every frame, and gated as the node runs it), the classical baselines and the curve net; report
PSNR/SSIM against the clean frames, the shipped detector's AP50 per class with the TIDE breakdown and the
recovery ratio per condition x severity, hallucinated and erased objects, mPC/rPC with and without
restoration, and the cells where restoring scores below not restoring. Writes OUT/weather_report.json,
OUT/weather_table.md and plots (AP vs severity, PSNR bars, a before/after strip).

Datasets: ``perception sim --dataset --no-objects --weather fog,rain,snow,night --severities 1-5``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from perception_pkg.cli.sim_cmd import _ints


def add_arguments(p: argparse.ArgumentParser) -> None:
    from perception_pkg.evaluation.weather import DEFAULT_METHODS

    p.add_argument("datasets", type=Path, nargs="+", help="perception sim dataset folders (frames pooled)")
    p.add_argument("--out", type=Path, default=Path("out/eval_weather"))
    p.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help="comma list: ours, ours_gated, zerodce, clahe, gamma, dcp, identity, NAME=card.yaml",
    )
    p.add_argument("--conditions", default="fog,rain,snow,night")
    p.add_argument("--severities", default="1-5", help="e.g. 3 or 1-5")
    p.add_argument(
        "--extra",
        default="",
        help="imagecorruptions families for mPC, e.g. frost,brightness,spatter,contrast",
    )
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument(
        "--model-card", default=None, help="restorer card for ours / ours_gated (default: shipped)"
    )
    p.add_argument("--classifier-card", default=None, help="classifier card (default: shipped)")
    p.add_argument(
        "--gate-conditions", default=None, help="ours_gated: conditions restored (default: the node's)"
    )
    p.add_argument("--min-confidence", type=float, default=None, help="ours_gated: classifier confidence bar")
    p.add_argument("--min-haze", type=float, default=None, help="ours_gated: fog haze bar (0: any)")
    p.add_argument("--quality-methods", default=None, help="PSNR/SSIM only for these (default: all)")
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--real", type=Path, nargs="*", default=None, help="real photos (no ground truth)")


def run(args: argparse.Namespace) -> int:
    from perception_pkg.evaluation.weather import build_methods, evaluate_weather, summary_table, write_report
    from perception_pkg.pipelines.weather import WeatherSettings
    from perception_pkg.weather import Gate

    default = WeatherSettings()
    gate = Gate(
        "auto",
        tuple(c for c in args.gate_conditions.split(",") if c)
        if args.gate_conditions is not None
        else default.gate_conditions,
        args.min_confidence if args.min_confidence is not None else default.min_confidence,
        args.min_haze if args.min_haze is not None else default.min_haze,
    )
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        methods = build_methods(
            names, args.backend, args.threads, gate, args.model_card, args.classifier_card
        )
    except ValueError as exc:
        print(f"perception eval weather: {exc}", file=sys.stderr)
        return 2
    report, samples = evaluate_weather(
        args.datasets,
        methods,
        conditions=[c for c in args.conditions.split(",") if c],
        severities=_ints(args.severities),
        max_frames=args.max_frames,
        extra=[c for c in args.extra.split(",") if c],
        backend=args.backend,
        threads=args.threads,
        quality_methods=args.quality_methods.split(",") if args.quality_methods else None,
        progress=lambda s: print(s, file=sys.stderr, flush=True),
    )
    report["gate_settings"] = {
        "conditions": list(gate.conditions),
        "min_confidence": gate.min_confidence,
        "min_haze": gate.min_haze,
    }
    report["command"] = "perception eval weather " + " ".join(sys.argv[3:])
    if args.real:
        from perception_pkg.evaluation.weather import real_photos

        photos = [q for r in args.real for q in (sorted(r.iterdir()) if r.is_dir() else [r])]
        report["real_photos"] = real_photos(
            photos, args.out, args.backend, args.threads, gate, args.model_card, args.classifier_card
        )
    written = write_report(report, samples, args.out, plots=not args.no_plots)
    print(summary_table(report))
    for k, v in report.get("rule_violations", {}).items():
        print(f"restoring below not restoring, {k}: {', '.join(v) if v else 'none'}")
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0
