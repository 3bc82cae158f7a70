"""``perception replay`` and ``perception demo``: offline runs over a rosbag2.

Output folders: a new or empty folder is used; a folder an earlier run of ours wrote (it holds
``.perception-output``) has those outputs replaced with ``--force`` (``demo`` always replaces its own),
and nothing else in it is touched; any other non-empty folder is refused. A damaged bag is read up to
the damage (one line says how far); Ctrl-C stops cleanly, writes the summary of what was done (marked
interrupted) and exits 130. Exit codes: 0 done, 2 bad input (arguments, parameters, a bag with nothing
readable, an output folder we may not use), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_PIPELINES = ["cloud_filter", "detection", "pose", "completion", "weather"]
# the demo's weather node restores the sample bag's fog camera (detection keeps the clear one); a -p of
# the user's wins, being applied after these
DEMO_PARAMS = [
    "weather.image_topic=/camera/fog/image_raw",
    "weather.camera_info_topic=/camera/fog/camera_info",
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay", help="replay a rosbag2 through the pipelines; write a report and a bag", description=__doc__
    )
    p.add_argument(
        "bag",
        help="a recording: rosbag2 folder or file (sqlite3 .db3 or .mcap), ROS 1 .bag, a folder of images "
        "(KITTI layout: calib/ beside image_2/ gives CameraInfo) or a video file",
    )
    p.add_argument("--fps", type=float, default=10.0, help="frame rate stamped on images/videos")
    p.add_argument("--calib", default=None, help="KITTI calib file or folder for images/videos (P2)")
    p.add_argument("--out", required=True, help="output folder (summary.json, bag/)")
    _common(p)
    p.set_defaults(func=_replay)

    d = sub.add_parser("demo", help="the embedded default: replay the bundled sample bag")
    d.add_argument(
        "--out",
        default="out/demo",
        help="output folder (its earlier demo outputs are replaced, nothing else)",
    )
    _common(d)
    d.set_defaults(func=_demo)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pipelines",
        default=",".join(DEFAULT_PIPELINES),
        help="comma-separated pipelines to run ('' for statistics only; default: %(default)s)",
    )
    p.add_argument("--params-file", default=None, help="node parameters (default: config/perception.yaml)")
    p.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NODE.NAME=VALUE",
        help="override one node parameter (YAML value), e.g. -p cloud_filter.input_topic=/points",
    )
    p.add_argument("--no-bag", action="store_true", help="do not write an output bag")
    p.add_argument("--results-only", action="store_true", help="output bag holds only pipeline results")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace the outputs of an earlier run in --out (only those; other files are kept)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _run(bag: Path, out: Path, args: argparse.Namespace) -> int:
    from perception_pkg.replay import replay_bag

    pipelines = [n.strip() for n in args.pipelines.split(",") if n.strip()]
    try:
        result = replay_bag(
            bag,
            out,
            pipelines,
            params_file=args.params_file,
            overrides=_overrides(args.param),
            fps=getattr(args, "fps", 10.0),
            calib=getattr(args, "calib", None),
            write_bag=not args.no_bag,
            copy_inputs=not args.results_only,
            progress=not args.quiet,
            force=args.force,
        )
    except (FileNotFoundError, FileExistsError, KeyError, ValueError) as exc:
        print(f"perception replay: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # while loading models or opening the bag (or a second Ctrl-C at the end)
        print("perception replay: interrupted before the replay ran; no summary written", file=sys.stderr)
        return EXIT_INTERRUPTED
    _print_summary(result.summary)
    print(f"summary: {result.summary_path}")
    if result.output_bag:
        print(f"output bag: {result.output_bag}")
    damage = result.summary.get("bag_damage")
    if damage:
        print(f"perception replay: {_damage_line(damage)}", file=sys.stderr)
    if result.interrupted:
        s = result.summary
        print(
            f"perception replay: interrupted after {s['bag_messages_read']} of {s['bag_messages']} messages; "
            "the summary and the output bag hold what was done",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return 0


EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a process Ctrl-C stopped


def _one_line(exc: BaseException) -> str:
    """The message of an error, never a bare errno (``FileExistsError(17, ...)`` printed as ``17``)."""
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return " ".join(str(exc).split()) or type(exc).__name__


def _damage_line(damage: dict) -> str:
    from perception_pkg.bag import BagDamage

    return BagDamage(
        read=damage["messages_read"],
        expected=damage["messages_expected"],
        opened=damage["open_error"],
        stops=list(damage["stopped_at"]),
        note=damage["note"],
    ).line()


def _overrides(items: list[str]) -> dict[str, object]:
    """``NODE.NAME=VALUE`` strings -> {"NODE.NAME": value}; values are YAML scalars or lists, as in a
    params file (``yaml.safe_load``: no object construction)."""
    import yaml

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param {item!r}: expected NODE.NAME=VALUE")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def _print_summary(summary: dict) -> None:
    print(
        f"{summary['messages']} messages, bag {summary['bag_duration_s']} s, "
        f"replay {summary['replay_wall_s']} s ({summary['speed_vs_realtime']}x real time)"
    )
    print(f"{'topic':<40}{'type':<34}{'count':>7}{'rate Hz':>9}  details")
    for topic, t in summary["topics"].items():
        detail = ""
        if "sizes" in t:
            detail = ", ".join(f"{k} ({v})" for k, v in t["sizes"].items())
        if "items" in t:
            detail = f"{t['items']['per_msg']:.1f} per msg ({t['items']['total']} in all)"
        if "points" in t:
            pt = t["points"]
            detail = f"{pt['mean']:.0f} pts/msg, finite {pt['finite_share']:.1%}"
        if t.get("malformed"):
            detail += f"  malformed {t['malformed']}"
        rate = f"{t['rate_hz']:.2f}" if "rate_hz" in t else "-"
        print(f"{topic:<40}{t['type'].replace('/msg/', '/'):<34}{t['count']:>7}{rate:>9}  {detail}")
    for name, p in summary["pipelines"].items():
        print(
            f"pipeline {name}: {p['messages']} msgs, median {p['median_ms']} ms, p99 {p['p99_ms']} ms,"
            f" skipped {p['skipped_malformed']}"
        )


def _replay(args: argparse.Namespace) -> int:
    return _run(Path(args.bag), Path(args.out), args)


def _demo(args: argparse.Namespace) -> int:
    from perception_pkg.sim import ensure_sample_bag

    bag = ensure_sample_bag()
    args.force = True  # the demo replaces its own earlier outputs (never other files in --out)
    chosen = {name.strip() for name in args.pipelines.split(",")}
    args.param = [*(p for p in DEMO_PARAMS if p.split(".", 1)[0] in chosen), *args.param]
    print(f"sample bag: {bag}")
    return _run(bag, Path(args.out), args)
