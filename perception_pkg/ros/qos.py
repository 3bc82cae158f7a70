"""QoS for sensor inputs and results, overridable per node through parameters."""

from __future__ import annotations

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from perception_pkg.ros.params import declare

_RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}


def declare_qos(node: Node, prefix: str, reliability: str, depth: int) -> QoSProfile:
    """QoS from parameters ``<prefix>.reliability`` and ``<prefix>.depth`` (keep-last, volatile).

    Sensor inputs default to best-effort keep-last-1: it matches both best-effort and reliable
    publishers (drivers differ), and the newest frame is the one worth processing. Results default to
    reliable so that recorders and slow consumers see every one.
    """
    rel = declare(
        node, f"{prefix}.reliability", reliability, f"{prefix} QoS reliability", choices=list(_RELIABILITY)
    )
    dep = declare(node, f"{prefix}.depth", depth, f"{prefix} QoS keep-last depth", minimum=1, maximum=1000)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=dep,
        reliability=_RELIABILITY[rel],
        durability=DurabilityPolicy.VOLATILE,
    )
