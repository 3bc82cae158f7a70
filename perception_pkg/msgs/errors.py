"""The one exception type the converters raise for malformed messages or unconvertible arrays."""

from __future__ import annotations

from typing import Any


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, (str, bytes)) else str(value)
    # a garbage field can be megabytes long; the message only needs enough to recognise it
    return text if len(text) <= 120 else text[:117] + "..."


class MessageFormatError(ValueError):
    """A message (or an array to be turned into one) does not have the layout its fields claim.

    Subclasses ValueError so callers that already guard conversions with ``except ValueError`` keep
    working. ``msg_type`` is the ROS type name (``sensor_msgs/msg/Image``), ``field`` the offending field
    (``step``, ``fields[2].offset``, ``data``), ``expected``/``actual`` what was required and what was seen.
    """

    def __init__(self, msg_type: str, field: str, expected: Any, actual: Any, detail: str = "") -> None:
        self.msg_type = msg_type
        self.field = field
        self.expected = expected
        self.actual = actual
        self.detail = detail
        text = f"{msg_type}.{field}: expected {expected}, got {_show(actual)}"
        if detail:
            text += f" ({detail})"
        super().__init__(text)

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        # the default pickling replays self.args (the formatted text) into __init__, which takes five
        # arguments; errors cross process boundaries in bag replay workers, so keep them picklable
        return (type(self), (self.msg_type, self.field, self.expected, self.actual, self.detail))
