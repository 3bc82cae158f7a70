"""Declaring node parameters with validation and a clear error naming the parameter.

rclpy rejects a YAML ``1`` for a float parameter with a type error most users cannot place; we accept
ints for floats and check ranges and choices ourselves, so a bad config file fails at start-up with
one message that says which key is wrong and what was expected.
"""

from __future__ import annotations

import array
from collections.abc import Sequence
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node


class ConfigError(ValueError):
    """A node parameter has a wrong type or value. The message names the node and the parameter."""


_TYPES: dict[type, tuple[type, ...]] = {
    bool: (bool,),
    int: (int,),
    float: (float, int),
    str: (str,),
    list: (list, tuple),
}


def declare(
    node: Node,
    name: str,
    default: Any,
    description: str,
    *,
    choices: Sequence[Any] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    length: int | None = None,
) -> Any:
    """Declare a read-only parameter, validate the value given by config, and return it."""
    descriptor = ParameterDescriptor(description=description, read_only=True, dynamic_typing=True)
    value = node.declare_parameter(name, default, descriptor).value
    if isinstance(value, array.array):  # rclpy hands numeric arrays back as array.array
        value = value.tolist()
    where = f"parameter '{node.get_name()}.{name}'"
    kind = type(default)
    if kind in (list, tuple):
        kind = list
    if value is None or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")
    if not isinstance(value, _TYPES[kind]):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {type(value).__name__} {value!r}")
    if kind is float:
        value = float(value)
    if kind is list:
        value = list(value)
        if length is not None and len(value) != length:
            raise ConfigError(f"{where}: expected {length} values, got {len(value)}: {value!r}")
    if choices is not None and value not in choices:
        raise ConfigError(f"{where}: expected one of {list(choices)}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{where}: expected >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{where}: expected <= {maximum}, got {value!r}")
    return value
