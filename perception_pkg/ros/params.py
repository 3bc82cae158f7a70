"""Node parameters from a Settings dataclass: one declared ROS parameter per field, validated.

rclpy rejects a YAML ``1`` for a float parameter with a type error most users cannot place, and it
silently ignores a parameter nobody declared (a typo such as ``score_treshold``). Here every field of
the node's Settings classes is declared with its description (so ``ros2 param describe`` documents
it), values are checked by :mod:`perception_pkg.runtime.settings` (ints accepted for floats, ranges,
choices), and any parameter given for this node that is not declared stops start-up with one line
naming it and the closest valid name.
"""

from __future__ import annotations

from typing import Any, TypeVar

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from perception_pkg.runtime.settings import (
    ROS_BUILTIN_PARAMETERS,
    ConfigError,
    check_known,
    from_params,
    specs,
)

S = TypeVar("S")

__all__ = ["ConfigError", "check_undeclared", "declare_settings"]


def _ros_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def declare_settings(node: Node, cls: type[S]) -> S:
    """Declare a read-only parameter per field of Settings ``cls`` and return the validated settings."""
    values: dict[str, Any] = {}
    for spec in specs(cls):
        descriptor = ParameterDescriptor(description=spec.description, read_only=True, dynamic_typing=True)
        value = node.declare_parameter(spec.param, _ros_value(spec.default), descriptor).value
        if hasattr(value, "tolist"):  # rclpy hands numeric arrays back as array.array
            value = value.tolist()
        values[spec.param] = value
    return from_params(cls, values, node.get_name())


def check_undeclared(node: Node, *, qos_overrides: bool = True) -> None:
    """ConfigError for a parameter given to this node (params file, ``-p``) that it does not declare.

    rclpy keeps the overrides it was given for a node in ``_parameter_overrides`` (Humble to Jazzy); it
    has no public accessor for them, and without this check a misspelt parameter is silently ignored.
    Call it after the node's subscriptions and publishers exist: rclpy declares the
    ``qos_overrides.<topic>.<entity>.<policy>`` parameters of the entities created with
    QoSOverridingOptions, so an override for a topic the node does not have is caught too
    (``qos_overrides=False`` leaves them out, for a check before the entities exist).
    """
    overrides = getattr(node, "_parameter_overrides", {}) or {}
    declared = set(node._parameters) | set(ROS_BUILTIN_PARAMETERS)
    given = [n for n in overrides if qos_overrides or not n.startswith("qos_overrides.")]
    check_known(given, declared, node.get_name())
