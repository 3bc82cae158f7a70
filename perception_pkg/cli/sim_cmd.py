"""``perception sim``: render a seeded scene into a rosbag2, datasets on disk and a contact sheet."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _ints(text: str) -> list[int]:
    """'3' -> [3]; '1-5' -> [1..5]; '1,3,5' -> [1, 3, 5]."""
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sim",
        help="simulate camera + LiDAR frames with exact ground truth (bag, datasets, contact sheet)",
        description=(
            "Render a seeded street scene (640x480 camera, 64-beam LiDAR, 10 Hz) with exact ground truth "
            "into OUT/bag (rosbag2, mcap) and OUT/dataset (COCO json, PNG, npz). With none of --bag, "
            "--dataset, --contact-sheet both bag and dataset are written. Same arguments, same bytes."
        ),
    )
    p.add_argument("--seed", type=int, default=0, help="scene seed (same seed, same bytes)")
    p.add_argument("--frames", type=int, default=10, help="number of frames (10 Hz)")
    p.add_argument("--out", type=Path, default=Path("out/sim"), help="output folder (bag/, dataset/)")
    p.add_argument("--bag", action="store_true", help="write OUT/bag (rosbag2, mcap)")
    p.add_argument("--dataset", action="store_true", help="write OUT/dataset (COCO json, images, npz)")
    p.add_argument(
        "--weather",
        default="all",
        help="comma list of fog,rain,snow,night,noise,motion_blur, or 'all' / 'none' (default all)",
    )
    p.add_argument("--severities", default="3", help="dataset severities, e.g. 3 or 1-5 (default 3)")
    p.add_argument("--bag-severity", type=int, default=3, help="severity of the bag's weather topics")
    p.add_argument("--contact-sheet", type=Path, default=None, metavar="PNG", help="write a contact sheet")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--azimuth-steps", type=int, default=2000, help="LiDAR columns per sweep")
    p.add_argument("--no-shadows", action="store_true", help="skip sun shadows (~15%% faster)")
    p.add_argument(
        "--no-objects", action="store_true",
        help="dataset without the per-object completion files (much faster; detection/pose evaluation)",
    )  # fmt: skip
    p.add_argument("--frame-step", type=int, default=1, help="render every n-th 10 Hz time step")
    p.add_argument("--force", action="store_true", help="replace OUT/bag, OUT/dataset of an earlier run")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from perception_pkg.replay.output import MARKER, OutputFolder, OutputFolderError, marked_outputs
    from perception_pkg.sim import WEATHER_KINDS, SceneConfig, generate

    if args.weather == "all":
        weather = list(WEATHER_KINDS)
    elif args.weather == "none":
        weather = []
    else:
        weather = [w.strip() for w in args.weather.split(",") if w.strip()]
    unknown = sorted(set(weather) - set(WEATHER_KINDS))
    if unknown:
        print(f"unknown weather {unknown}; choose from {', '.join(WEATHER_KINDS)}", file=sys.stderr)
        return 2
    severities = _ints(args.severities)
    if not severities or any(not 1 <= s <= 5 for s in [*severities, args.bag_severity]):
        print("severities must be in 1..5", file=sys.stderr)
        return 2
    if args.frames < 1:
        print("--frames must be at least 1", file=sys.stderr)
        return 2
    bag, dataset = args.bag, args.dataset
    if not (bag or dataset or args.contact_sheet):
        bag = dataset = True  # nothing asked for: write both
    # --force replaces only what an earlier run of ours wrote (the output marker names it), never a
    # folder of the same name that someone else put there
    if args.out.exists() and not args.out.is_dir():
        print(f"--out {args.out} is a file, not a folder", file=sys.stderr)
        return 2
    try:
        ours = set(marked_outputs(args.out)) if args.out.is_dir() else set()
    except OutputFolderError as exc:
        print(exc, file=sys.stderr)
        return 2
    targets = [name for name, wanted in (("bag", bag), ("dataset", dataset)) if wanted]
    for name in targets:
        target = args.out / name
        if target.exists() or target.is_symlink():
            if not args.force:
                print(f"{target} exists; pass --force to replace it", file=sys.stderr)
                return 2
            if name not in ours:
                print(
                    f"{target} exists and was not written by perception sim (no {MARKER} naming it); "
                    "remove it yourself or choose another --out: nothing is deleted",
                    file=sys.stderr,
                )
                return 2
    # the checks above leave only our own earlier outputs to replace: OutputFolder removes those only
    earlier = [n for n in targets if (args.out / n).exists() or (args.out / n).is_symlink()]
    OutputFolder(args.out, earlier, "perception sim").claim(ours | set(targets))
    config = SceneConfig.with_sensors(
        width=args.width,
        height=args.height,
        azimuth_steps=args.azimuth_steps,
        frames=args.frames * max(args.frame_step, 1),
    )
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        print(f"\rframe {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    result = generate(
        args.out, args.seed, args.frames, config=config, bag=bag, dataset=dataset, weather=weather,
        severities=severities, bag_severity=args.bag_severity, contact_sheet=args.contact_sheet,
        progress=progress, shadows=not args.no_shadows, objects=not args.no_objects,
        frame_step=args.frame_step,
    )  # fmt: skip
    wall = time.perf_counter() - start
    for label, path in (
        ("bag", result.bag),
        ("dataset", result.dataset),
        ("contact sheet", result.contact_sheet),
    ):
        if path is not None:
            print(f"{label}: {path}")
    per_stage = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items() if v > 0)
    print(f"{args.frames} frames in {wall:.1f} s ({per_stage})")
    return 0
