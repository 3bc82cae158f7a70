"""Decoder names a card can use (``decoder.type``), imported on use.

A decoder in its own file registers by adding a line here, or a card can name any class directly as
``package.module:ClassName`` (a subclass of :class:`perception_pkg.decoders.base.Decoder`).
"""

from __future__ import annotations

import importlib

from perception_pkg.cards.errors import CardError
from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.base import Decoder

DECODERS: dict[str, str] = {
    "centernet": "perception_pkg.decoders.detection.centernet:CenterNetDecoder",
    "heatmap_argmax": "perception_pkg.decoders.pose.heatmap_argmax:HeatmapArgmaxDecoder",
    "image": "perception_pkg.decoders.image:ImageDecoder",
    "integral": "perception_pkg.decoders.pose.integral:IntegralDecoder",
    "mass_displacement": "perception_pkg.decoders.pose.mass_displacement:MassDisplacementDecoder",
    "mixture_pose": "perception_pkg.decoders.pose.mixture_pose:MixturePoseDecoder",
    "raw": "perception_pkg.decoders.image:RawDecoder",
    "rtm3d": "perception_pkg.decoders.detection.rtm3d:Rtm3dDecoder",
    "yolov8": "perception_pkg.decoders.detection.yolov8:Yolov8Decoder",
    "yolov8_pose": "perception_pkg.decoders.detection.yolov8:Yolov8PoseDecoder",
    "yolox": "perception_pkg.decoders.detection.yolox:YoloxDecoder",
}


def decoder_class(name: str, source: str | None = None) -> type[Decoder]:
    target = DECODERS.get(name, name)
    if ":" not in target:
        raise CardError(
            "decoder.type",
            f"unknown decoder {name!r} (known: {sorted(DECODERS)}, or 'package.module:ClassName')",
            source,
        )
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise CardError("decoder.type", f"cannot import decoder {target!r}: {exc}", source) from exc
    if not (isinstance(cls, type) and issubclass(cls, Decoder)):
        raise CardError("decoder.type", f"{target!r} is not a Decoder subclass", source)
    return cls


def build_decoder(card: ModelCard) -> Decoder:
    """The decoder the card names, configured from ``decoder.params``; CardError on a bad card."""
    source = str(card.source) if card.source else None
    return decoder_class(card.decoder.type, source)(card)


def validate_decoder(card: ModelCard) -> None:
    """Building a decoder checks its roles and parameters; cheap, so cards are checked on load."""
    build_decoder(card)
