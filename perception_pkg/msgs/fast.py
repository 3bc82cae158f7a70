"""Positional message constructors for the hot path: every field given, in definition order, no defaults.

A generated rclpy class builds a default for every nested field in ``__init__`` even when the caller
passes one (``kwargs.get('header', Header())`` evaluates ``Header()`` regardless), so a Detection2D made
with keywords costs ~10 throw-away objects on top of the ones kept. :func:`positional` returns, per
class, a function ``make(v0, v1, ...)`` that creates the instance without ``__init__`` and stores the
values in the class's own ``__slots__`` (``'_' + field``): exactly what the generated property setters
store when field checks are off, which is rclpy's default. Callers pass what the setters would store:
Python ``float``/``int``/``str``, lists for sequences of messages, a float64 numpy array for fixed-size
float arrays. ``tests/test_msgs_fast.py`` checks the result equals (``==``) and serialises byte for byte
like the keyword-built message.

rosbags classes are dataclasses whose positional order is the field order, so they are returned as they
are. A class that does not look like a generated rclpy class (no field table, or a field without its
slot) gets a keyword-building fallback, so nothing breaks on another rosidl version, only slows down.
"""

from __future__ import annotations

import keyword
import sys
from collections.abc import Callable
from functools import cache
from typing import Any

from perception_pkg.msgs.factory import MessageFactory


def _keyword_maker(cls: type, names: list[str]) -> Callable[..., Any]:
    def make(*values: Any) -> Any:
        return cls(**dict(zip(names, values, strict=True)))

    return make


@cache
def positional(cls: type) -> Callable[..., Any]:
    """``make(*field_values)`` -> an instance of ``cls`` (see the module docstring)."""
    table = getattr(cls, "get_fields_and_field_types", None)
    if table is None:  # rosbags (or any dataclass): positional construction is native
        return cls
    names = list(table())
    slots = set(getattr(cls, "__slots__", ()))
    if not all(n.isidentifier() and not keyword.iskeyword(n) and f"_{n}" in slots for n in names):
        return _keyword_maker(cls, names)
    module = sys.modules.get(cls.__module__)
    # what a default-constructed message holds: checks on only when ROS_PYTHON_CHECK_FIELDS=1
    check = getattr(module, "ros_python_check_fields", "") == "1"
    lines = [f"def make({', '.join(names)}):", "    o = new(cls)"]
    lines += [f"    o._{n} = {n}" for n in names]
    if "_check_fields" in slots:
        lines.append(f"    o._check_fields = {check}")
    lines.append("    return o")
    scope: dict[str, Any] = {"new": object.__new__, "cls": cls}
    exec("\n".join(lines), scope)  # the names are the class's own identifiers, checked above
    return scope["make"]  # type: ignore[no-any-return]


@cache
def makers(types: MessageFactory, *names: str) -> tuple[Callable[..., Any], ...]:
    """:func:`positional` for several message classes of ``types`` (short or full names); cached, as
    equal factories hold the same classes."""
    return tuple(positional(types.cls(n)) for n in names)
