"""Model cards: ``models/<name>/card.yaml`` describes an ONNX model well enough to run it.

``load_card(path)`` parses, validates (CardError names the field), verifies the model file's sha256 and
cross-checks against the ONNX file. A card names registered decoders and torch factories only
(``plugins``: third-party ones through entry points an installed package declares).
"""

from perception_pkg.cards.checksum import file_sha256, verify_model
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
    "file_sha256",
    "load_card",
    "onnx_io",
    "parse_card",
    "verify_model",
]
