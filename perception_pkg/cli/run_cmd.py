"""``perception run``: start perception nodes in this process."""

from __future__ import annotations

import argparse

from perception_pkg.paths import config_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run perception nodes (one process, multi-threaded executor)", description=__doc__
    )
    p.add_argument(
        "--nodes", default="cloud_filter", help="comma-separated node names (default: %(default)s)"
    )
    p.add_argument("--params-file", default=None, help="ROS parameter YAML (default: config/perception.yaml)")
    p.add_argument(
        "--ros-args",
        dest="ros_args",
        nargs=argparse.REMAINDER,
        default=None,
        help="passed to rclpy, e.g. --ros-args -r __ns:=/robot1",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from perception_pkg.ros.launcher import run_nodes

    params = args.params_file or config_dir() / "perception.yaml"
    ros_args = ["--ros-args", *args.ros_args] if args.ros_args else None
    return run_nodes([n.strip() for n in args.nodes.split(",") if n.strip()], params, ros_args)
