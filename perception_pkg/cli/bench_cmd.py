"""``perception bench``: preprocess / infer / decode timings per model, ONNX Runtime vs torch eager.

For each card (``--card``, else ``models/*/card.yaml``, else a built-in CenterNet-style network exported
on the fly) it times the three stages on the same image and the same input tensor, alternating backends
each run so machine noise hits both alike. Prints a table, writes JSON. Goals checked: preprocess +
decode under 20% of inference time; with ``--torch``, ONNX Runtime at least 1.5x faster than torch
eager at batch 1 (and, with a CUDA GPU, torch CUDA eager and CUDA-graph numbers).

torch runs only with ``--torch``: it builds the network from the card's ``torch.factory``, a name the
project (or an installed package's entry point) registers, never an import path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BUILTIN_NAME = "builtin_centernet"
BUILTIN_HW = (384, 384)
BUILTIN_CLASSES = 80


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="time preprocess/infer/decode: onnxruntime vs torch eager",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--card", action="append", default=None, help="card.yaml to bench (repeatable)")
    p.add_argument("--builtin", action="store_true", help="also bench the built-in CenterNet-style network")
    p.add_argument("--runs", type=int, default=30, help="timed runs per stage (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default: %(default)s)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help=f"CPU threads for both backends (default: all cores, {os.cpu_count()} here)",
    )
    p.add_argument("--image", default=None, help="BGR image to use (default: a COCO sample, else synthetic)")
    p.add_argument(
        "--torch",
        action="store_true",
        help="also time torch eager, built from each card's registered torch.factory (needs torch)",
    )
    p.add_argument(
        "--no-torch", action="store_true", help=argparse.SUPPRESS
    )  # the default now; kept for scripts
    p.add_argument(
        "--json", default="out/bench_engines.json", help="where to write results (default: %(default)s)"
    )
    p.set_defaults(func=run)


def stats(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {
        "median_ms": float(np.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "runs": int(ms.size),
    }


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _image(path: str | None) -> tuple[np.ndarray, str]:
    import cv2

    if path:
        image = cv2.imread(path)
        if image is None:
            raise SystemExit(f"perception bench: cannot read image {path}")
        return image, path
    from perception_pkg.paths import assets_dir

    root = assets_dir()
    sample = root / "coco" / "000000000785.jpg" if root else None
    if sample is not None and sample.is_file():
        return cv2.imread(str(sample)), str(sample)
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 3)
    return image, "synthetic 640x480"


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def builtin_card(directory: Path) -> Path:
    """Export the built-in benchmark network (TinyCenterNet, 384x384, 80 classes) with its card."""
    import torch

    from perception_pkg.training.formats import centernet_card, write_model
    from perception_pkg.training.models import TinyCenterNet

    torch.manual_seed(0)
    card = centernet_card(BUILTIN_NAME, BUILTIN_HW, [f"class{i}" for i in range(BUILTIN_CLASSES)])
    card["description"] = "built-in benchmark network: CenterNet-style, stride-16 encoder, stride-4 heads"
    card["provenance"] = {"training": "untrained (random weights); for timing only", "data": "none"}
    return write_model(
        TinyCenterNet(num_classes=BUILTIN_CLASSES),
        card,
        directory,
        dynamo=True,
        weights=True,
        factory="perception_pkg.training.models:TinyCenterNet",
        factory_kwargs={"num_classes": BUILTIN_CLASSES},
    )


def _card_paths(args: argparse.Namespace, tmp: Path) -> list[Path]:
    if args.card:
        paths = [Path(c) for c in args.card]
    else:
        from perception_pkg.paths import models_dir

        try:
            root = models_dir()
        except FileNotFoundError:
            root = None
        paths = sorted(root.glob("*/card.yaml")) if root is not None and root.is_dir() else []
    if args.builtin or not paths:
        if not _torch_available():
            raise SystemExit(
                "perception bench: no model cards found and torch is not installed to export the "
                "built-in network (pip install torch==2.13.0 onnxscript), or pass --card"
            )
        print(f"exporting the built-in network {BUILTIN_NAME} ...", file=sys.stderr)
        paths.append(builtin_card(tmp / BUILTIN_NAME))
    return paths


def _cuda_graph_infer(module: Any, tensor: np.ndarray) -> Callable[[], Any]:  # pragma: no cover - GPU only
    """Capture one forward pass in a CUDA graph; the returned callable copies the input in and replays."""
    import torch

    static_in = torch.from_numpy(tensor).cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad():
        for _ in range(3):
            module(static_in)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        static_out = module(static_in)
    outs = static_out if isinstance(static_out, (tuple, list)) else (static_out,)
    host = torch.from_numpy(tensor)

    def run() -> list[np.ndarray]:
        static_in.copy_(host, non_blocking=True)
        graph.replay()
        return [o.cpu().numpy() for o in outs]

    return run


def bench_card(
    card_path: Path, image: np.ndarray, runs: int, warmup: int, threads: int | None, with_torch: bool
) -> dict[str, Any]:
    from perception_pkg.cards import load_card
    from perception_pkg.engines import ModelRunner, load_engine

    card = load_card(card_path)
    runner = ModelRunner(card, backend="onnxruntime", threads=threads)
    engines: dict[str, Any] = {"onnxruntime-cpu": runner.engine}
    notes: list[str] = []
    extra_infer: dict[str, Callable[[], Any]] = {}
    if with_torch:
        if card.torch is None:
            notes.append("torch skipped: the card has no torch section")
        else:
            import torch

            engines["torch-cpu"] = load_engine(card, backend="torch", threads=threads)
            if torch.cuda.is_available():  # pragma: no cover - GPU only
                cuda_engine = load_engine(card, backend="torch-cuda")
                engines["torch-cuda"] = cuda_engine
    boxes = None
    if runner.preprocessor.is_topdown:
        h, w = image.shape[:2]
        boxes = np.array([[w * 0.3, h * 0.1, w * 0.6, h * 0.9]])
    prepared = runner.preprocess(image, boxes)
    inputs = {runner.input_name: prepared.tensor}
    if "torch-cuda" in engines:  # pragma: no cover - GPU only
        graph_run = _cuda_graph_infer(engines["torch-cuda"].module, prepared.tensor)
        extra_infer["torch-cuda-graph"] = graph_run
    for _ in range(warmup):
        runner.preprocess(image, boxes)
        for engine in engines.values():
            engine.infer(inputs)
        for fn in extra_infer.values():
            fn()
    pre_t: list[float] = []
    dec_t: list[float] = []
    infer_t: dict[str, list[float]] = {name: [] for name in [*engines, *extra_infer]}
    outputs: dict[str, Any] = {}
    for i in range(runs):
        pre_t.append(_timed(lambda: runner.preprocess(image, boxes))[0])
        # alternate the order so neither backend always runs on a freshly warmed cache
        names = list(engines) if i % 2 == 0 else list(reversed(engines))
        for name in names:
            dt, outputs[name] = _timed(lambda name=name: engines[name].infer(inputs))
            infer_t[name].append(dt)
        for name, fn in extra_infer.items():
            infer_t[name].append(_timed(fn)[0])
        dec_t.append(_timed(lambda: runner.decode(outputs["onnxruntime-cpu"], prepared))[0])
    result: dict[str, Any] = {
        "model": card.name,
        "card": str(card_path),
        "input_shape": list(prepared.tensor.shape),
        "decoder": card.decoder.type,
        "preprocess": stats(pre_t),
        "decode": stats(dec_t),
        "infer": {
            name: {"engine": engines[name].describe() if name in engines else name, **stats(t)}
            for name, t in infer_t.items()
        },
        "notes": notes,
    }
    ort = result["infer"]["onnxruntime-cpu"]["median_ms"]
    share = (result["preprocess"]["median_ms"] + result["decode"]["median_ms"]) / ort
    result["pre_plus_decode_share_of_ort_infer"] = share
    goals: dict[str, Any] = {"pre_plus_decode_under_20pct": share < 0.20}
    if "torch-cpu" in result["infer"]:
        ratio = result["infer"]["torch-cpu"]["median_ms"] / ort
        result["torch_over_ort_infer_ratio"] = ratio
        goals["ort_at_least_1.5x_faster_than_torch_eager"] = ratio >= 1.5
    result["goals"] = goals
    for engine in engines.values():
        engine.close()
    return result


def _table(results: list[dict[str, Any]]) -> str:
    rows = [("model", "stage", "backend", "median ms", "p99 ms")]
    for r in results:
        rows.append(
            (
                r["model"],
                "preprocess",
                "numpy/OpenCV",
                f"{r['preprocess']['median_ms']:.2f}",
                f"{r['preprocess']['p99_ms']:.2f}",
            )
        )
        for name, s in r["infer"].items():
            rows.append((r["model"], "infer", name, f"{s['median_ms']:.2f}", f"{s['p99_ms']:.2f}"))
        rows.append(
            (
                r["model"],
                "decode",
                f"numpy ({r['decoder']})",
                f"{r['decode']['median_ms']:.2f}",
                f"{r['decode']['p99_ms']:.2f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        "  ".join(
            c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        share = 100 * r["pre_plus_decode_share_of_ort_infer"]
        summary = f"{r['model']}: preprocess+decode = {share:.1f}% of ORT infer"
        if "torch_over_ort_infer_ratio" in r:
            summary += f"; torch eager / ORT = {r['torch_over_ort_infer_ratio']:.2f}x"
        failed = [g for g, ok in r["goals"].items() if not ok]
        summary += "; goals met" if not failed else f"; goals MISSED: {', '.join(failed)}"
        lines.append(summary)
        lines.extend(f"{r['model']}: {n}" for n in r["notes"])
    return "\n".join(lines)


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces these figures."""
    parts = ["perception", "bench", "--runs", str(args.runs), "--warmup", str(args.warmup)]
    parts += [f"--card={c}" for c in args.card or []]
    for flag, value in (("--threads", args.threads), ("--image", args.image)):
        if value is not None:
            parts += [flag, str(value)]
    parts += ["--builtin"] * bool(args.builtin) + ["--torch"] * bool(args.torch)
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    import onnxruntime

    from perception_pkg.engines import NonFiniteOutput

    threads = args.threads or os.cpu_count() or 1
    image, image_name = _image(args.image)
    with_torch = bool(args.torch)  # never on its own: torch runs a card's network only when asked
    if with_torch and not _torch_available():
        print("perception bench: --torch needs torch (pip install torch==2.13.0)", file=sys.stderr)
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="perception-bench-") as tmp:
            results = [
                bench_card(p, image, args.runs, args.warmup, threads, with_torch)
                for p in _card_paths(args, Path(tmp))
            ]
    except (ValueError, NonFiniteOutput) as exc:  # CardError, a model that gives NaN: one line
        print(f"perception bench: {exc}", file=sys.stderr)
        return 2
    machine: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
    }
    if with_torch:
        import torch

        machine["torch"] = torch.__version__
        machine["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    report = {
        "command": _command(args),
        "image": image_name,
        "image_shape": list(image.shape),
        "machine": machine,
        "models": results,
    }
    print(_table(results))
    if not with_torch:
        print("ONNX Runtime only (--torch adds torch eager)")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0
