"""Decoder names a card can use (``decoder.type``), imported on use.

A decoder in its own file registers by adding a line here. A card names a decoder, never an import
path: a third-party decoder (a subclass of :class:`perception_pkg.decoders.base.Decoder`) is one an
installed package registers in the entry-point group ``perception_pkg.decoders``
(:mod:`perception_pkg.cards.plugins`), loaded only when a card names it.
"""

from __future__ import annotations

import importlib

from perception_pkg.cards.errors import CardError
from perception_pkg.cards.plugins import DECODER_GROUP, load_plugin, unknown
from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.base import Decoder

DECODERS: dict[str, str] = {
    "centernet": "perception_pkg.decoders.detection.centernet:CenterNetDecoder",
    "completion": "perception_pkg.decoders.completion:CompletionDecoder",
    "detr": "perception_pkg.decoders.detection.detr:DetrDecoder",
    "heatmap_argmax": "perception_pkg.decoders.pose.heatmap_argmax:HeatmapArgmaxDecoder",
    "image": "perception_pkg.decoders.image:ImageDecoder",
    "integral": "perception_pkg.decoders.pose.integral:IntegralDecoder",
    "mass_displacement": "perception_pkg.decoders.pose.mass_displacement:MassDisplacementDecoder",
    "mixture_pose": "perception_pkg.decoders.pose.mixture_pose:MixturePoseDecoder",
    "raw": "perception_pkg.decoders.image:RawDecoder",
    "rnn_association": "perception_pkg.decoders.pose.rnn_association:RnnAssociationDecoder",
    "rtm3d": "perception_pkg.decoders.detection.rtm3d:Rtm3dDecoder",
    "simcc": "perception_pkg.decoders.pose.simcc:SimccDecoder",
    "yolov8": "perception_pkg.decoders.detection.yolov8:Yolov8Decoder",
    "yolov8_pose": "perception_pkg.decoders.detection.yolov8:Yolov8PoseDecoder",
    "yolox": "perception_pkg.decoders.detection.yolox:YoloxDecoder",
}


def decoder_class(name: str, source: str | None = None) -> type[Decoder]:
    """The class ``decoder.type`` names: a DECODERS entry, else an installed ``perception_pkg.decoders``
    entry point of that name; CardError otherwise (nothing is imported for an unknown name)."""
    target = DECODERS.get(name)
    if target is not None:
        module, _, attr = target.partition(":")
        cls = getattr(importlib.import_module(module), attr)
    else:
        cls = load_plugin(DECODER_GROUP, name, "decoder.type", source)
        if cls is None:
            raise CardError("decoder.type", unknown("decoder", name, sorted(DECODERS), DECODER_GROUP), source)
    if not (isinstance(cls, type) and issubclass(cls, Decoder)):
        raise CardError("decoder.type", f"{name!r} is not a Decoder subclass", source)
    return cls


def build_decoder(card: ModelCard) -> Decoder:
    """The decoder the card names, configured from ``decoder.params``; CardError on a bad card."""
    source = str(card.source) if card.source else None
    return decoder_class(card.decoder.type, source)(card)


def validate_decoder(card: ModelCard) -> None:
    """Building a decoder checks its roles and parameters; cheap, so cards are checked on load."""
    build_decoder(card)
