"""Model cards: ``models/<name>/card.yaml`` describes an ONNX model well enough to run it.

``load_card(path)`` parses, validates (CardError names the field) and cross-checks against the ONNX file.
"""

from perception_pkg.cards.errors import CardError
from perception_pkg.cards.loader import check_card_against_onnx, load_card, onnx_io
from perception_pkg.cards.schema import (
    DecoderSpec,
    InputSpec,
    ModelCard,
    OutputSpec,
    PrecisionSpec,
    Provenance,
    ResizeSpec,
    TorchSpec,
    parse_card,
)

__all__ = [
    "CardError",
    "DecoderSpec",
    "InputSpec",
    "ModelCard",
    "OutputSpec",
    "PrecisionSpec",
    "Provenance",
    "ResizeSpec",
    "TorchSpec",
    "check_card_against_onnx",
    "load_card",
    "onnx_io",
    "parse_card",
]
