"""The conditions the weather stack names: the classifier's classes, in its output order."""

from __future__ import annotations

CONDITIONS: tuple[str, ...] = ("clear", "fog", "rain", "snow", "night")
ADVERSE: tuple[str, ...] = CONDITIONS[1:]
