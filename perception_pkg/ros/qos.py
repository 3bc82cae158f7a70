"""QoS of a node's inputs and outputs, and the check of an input against its publishers.

Profiles come from NodeSettings (``input_qos.*``, ``output_qos.*``, the node's defaults for all its
inputs and outputs); rclpy's standard per-topic overrides (``qos_overrides.<topic>.subscription.<policy>``,
QoSOverridingOptions) are applied on top when the entities are created.

A subscription and a publisher whose QoS are incompatible never exchange a message and neither side
fails: :func:`incompatibilities` names what does not match, so the node can say so in one line.
"""

from __future__ import annotations

from rclpy.duration import Duration
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    LivelinessPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

_RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}


def qos_profile(reliability: str, depth: int, *, latched: bool = False) -> QoSProfile:
    """Keep-last ``depth`` with the named reliability (``best_effort`` or ``reliable``); volatile, or
    transient-local when ``latched`` (a topic like /tf_static whose publisher sends once, at start-up:
    only a transient-local reader that joins later is given what was sent before it came)."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=_RELIABILITY[reliability],
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def policy_name(value: object) -> str:
    """``BEST_EFFORT`` for ReliabilityPolicy.BEST_EFFORT (and the like)."""
    return getattr(value, "name", str(value))


def _infinite(d: Duration) -> bool:
    """0 (unset) and RMW_DURATION_INFINITE both mean no deadline."""
    return d.nanoseconds <= 0 or d.nanoseconds >= 2**63 - 1


def incompatibilities(offered: QoSProfile, requested: QoSProfile) -> list[tuple[str, str, str]]:
    """``(policy, offered, requested)`` for each policy of a publisher (``offered``) that a subscription
    (``requested``) cannot accept, by the DDS request-offered rules ROS 2 uses: reliability,
    durability, deadline and liveliness. Empty when they match."""
    out: list[tuple[str, str, str]] = []
    if (
        requested.reliability == ReliabilityPolicy.RELIABLE
        and offered.reliability == ReliabilityPolicy.BEST_EFFORT
    ):
        out.append(("reliability", policy_name(offered.reliability), policy_name(requested.reliability)))
    if (
        requested.durability == DurabilityPolicy.TRANSIENT_LOCAL
        and offered.durability == DurabilityPolicy.VOLATILE
    ):
        out.append(("durability", policy_name(offered.durability), policy_name(requested.durability)))
    req_deadline, off_deadline = requested.deadline, offered.deadline
    if not _infinite(req_deadline) and (
        _infinite(off_deadline) or off_deadline.nanoseconds > req_deadline.nanoseconds
    ):
        out.append(
            ("deadline", f"{off_deadline.nanoseconds / 1e9:g} s", f"{req_deadline.nanoseconds / 1e9:g} s")
        )
    if (
        requested.liveliness == LivelinessPolicy.MANUAL_BY_TOPIC
        and offered.liveliness == LivelinessPolicy.AUTOMATIC
    ):
        out.append(("liveliness", policy_name(offered.liveliness), policy_name(requested.liveliness)))
    return out
