"""The one exception a wrong model card raises."""

from __future__ import annotations


class CardError(ValueError):
    """A model card is missing a field, has a wrong value, or disagrees with its ONNX file.

    ``field`` is the dotted path of the offending field (``inputs[0].resize.anchor``) so a user can find
    it in the YAML; ``source`` is the card file when known.
    """

    def __init__(self, field: str, message: str, source: str | None = None) -> None:
        self.field = field
        self.source = source
        self.reason = message
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {message}" if field else f"{where}{message}")
