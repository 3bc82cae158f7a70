"""``perception build-engine``: build (or confirm) a model's TensorRT engine ahead of time.

Builds only when the cached engine is missing or stale (ONNX, precision, profile, TensorRT version or GPU
changed); says which. INT8 calibrates on frames from a folder of images or a rosbag image topic.
Exit codes: 0 built or up to date, 2 bad arguments or card, 3 TensorRT unavailable here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

log = logging.getLogger(__name__)

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build-engine",
        help="build a model's TensorRT engine ahead of time",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--card", required=True, help="models/<name>/card.yaml (or its folder)")
    p.add_argument(
        "--precision",
        choices=["fp32", "fp16", "int8"],
        default=None,
        help="default: the card's preferred precision",
    )
    cal = p.add_mutually_exclusive_group()
    cal.add_argument("--calib-images", metavar="DIR", help="INT8: folder of calibration images")
    cal.add_argument("--calib-bag", metavar="BAG", help="INT8: rosbag2 folder or .mcap with an image topic")
    p.add_argument(
        "--calib-topic", metavar="TOPIC", help="INT8: Image or CompressedImage topic in --calib-bag"
    )
    p.add_argument(
        "--calib-max",
        type=int,
        default=None,
        help="at most this many calibration frames (default: the card's precision.calibration.images)",
    )
    p.add_argument("--max-batch", type=int, default=None, help="widen a dynamic batch dimension's profile")
    p.add_argument("--cache-dir", default=None, help="engine folder (default: <model dir>/engines)")
    p.add_argument(
        "--workspace-mb", type=int, default=1024, help="builder workspace (default: %(default)s MiB)"
    )
    p.add_argument("--device", type=int, default=0, help="CUDA device index (default: %(default)s)")
    p.add_argument("--rebuild", action="store_true", help="rebuild even if the cached engine is valid")
    p.set_defaults(func=run)


def _fail(message: str, code: int) -> int:
    print(f"perception build-engine: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from perception_pkg.cards import CardError, load_card

    try:
        card = load_card(args.card)
    except CardError as exc:
        return _fail(f"invalid card: {exc}", EXIT_USAGE)
    precision = args.precision or card.precision.preferred
    if args.calib_bag and not args.calib_topic:
        return _fail("--calib-bag needs --calib-topic", EXIT_USAGE)
    if args.calib_topic and not args.calib_bag:
        return _fail("--calib-topic needs --calib-bag", EXIT_USAGE)
    if precision != "int8" and (args.calib_images or args.calib_bag):
        log.warning("calibration data is only used for int8; building %s", precision)

    from perception_pkg.engines.onnxruntime_backend import ort_cuda_problem
    from perception_pkg.engines.select import choose_backend
    from perception_pkg.engines.tensorrt_backend import tensorrt_problem

    problem = tensorrt_problem()
    if problem is not None:
        fallback = choose_backend("auto", lambda: problem, ort_cuda_problem)
        return _fail(
            f"TensorRT is unavailable here ({problem}); no engine was built for {card.name!r}.\n"
            f"At run time this model will use {fallback.label} instead: {fallback.message}.\n"
            "Run this command on the robot (TensorRT 10 and pycuda installed, e.g. JetPack 6) to build the "
            f"{precision} engine ahead of time.",
            EXIT_UNAVAILABLE,
        )
    return _build(card, precision, args)


def _build(card: Any, precision: str, args: argparse.Namespace) -> int:  # pragma: no cover - needs TensorRT
    from perception_pkg.engines.base import EngineError
    from perception_pkg.engines.calibration import CalibrationBatches, images_from_bag, images_from_folder
    from perception_pkg.engines.profiles import profile_from_card
    from perception_pkg.engines.tensorrt_backend import TensorRTEngine

    calibration = None
    if precision == "int8" and (args.calib_images or args.calib_bag):
        limit = args.calib_max or card.precision.calibration_images
        frames = (
            images_from_folder(args.calib_images, limit)
            if args.calib_images
            else images_from_bag(args.calib_bag, args.calib_topic, limit)
        )
        # the calibrator runs at the profile's opt shape, so batches take its batch size
        batch = profile_from_card(card, args.max_batch)[card.image_input.name].opt[0]
        calibration = CalibrationBatches(card, frames, batch)
    try:
        engine = TensorRTEngine(
            card,
            precision=precision,
            cache_dir=args.cache_dir,
            device_id=args.device,
            calibration=calibration,
            max_batch=args.max_batch,
            workspace_mb=args.workspace_mb,
            rebuild=args.rebuild,
        )
    except (EngineError, ValueError, FileNotFoundError) as exc:
        return _fail(str(exc), 1)
    entry = engine.cache.entry(card.name, precision)
    state = "built" if engine.built else "up to date"
    print(f"{card.name}: {state}: {entry.engine} ({engine.describe()}, key {engine.key.digest()})")
    engine.close()
    return 0
