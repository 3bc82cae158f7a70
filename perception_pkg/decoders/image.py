"""Image-to-image outputs (e.g. weather restoration) -> BGR uint8, and the raw pass-through."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.base import Decoder
from perception_pkg.preprocess.normalize import Normalizer


class ImageDecoder(Decoder):
    """Inverse normalisation of an image output; defaults to the image input's own scale/mean/std.

    ``pixel = (y * std + mean) / scale``. ForkGAN-style generators (tanh output, input ``x/127.5 - 1``)
    use ``scale: 1/255, mean: 0.5, std: 0.5``, the same as their input.
    """

    roles = ("image",)
    params: ClassVar[Mapping[str, Any]] = {
        "scale": None,
        "mean": None,
        "std": None,
        "color": None,
        "layout": None,
    }
    result = "image"

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        spec = card.image_input

        def pick(name: str, default: object) -> object:
            return default if self.p[name] is None else self.p[name]

        color = pick("color", spec.color)
        layout = pick("layout", spec.layout)
        if color not in ("RGB", "BGR", "GRAY"):
            raise self.fail("color", f"expected RGB, BGR or GRAY, got {color!r}")
        if layout not in ("NCHW", "NHWC"):
            raise self.fail("layout", f"expected NCHW or NHWC, got {layout!r}")
        try:
            self.normalizer = Normalizer(
                float(pick("scale", spec.scale)),
                pick("mean", spec.mean),
                pick("std", spec.std),
                color,
                layout,
                "float32",
            )
        except (TypeError, ValueError) as exc:
            raise self.fail("scale", f"invalid scale/mean/std: {exc}") from exc

    def __call__(self, outputs: Mapping[str, NDArray]) -> NDArray[np.uint8]:
        return self.normalizer.invert(self.output(outputs, "image", 4))


class RawDecoder(Decoder):
    """No decoding: hands back the output tensors by name (point clouds, custom heads)."""

    result = "raw"

    def __call__(self, outputs: Mapping[str, NDArray]) -> dict[str, NDArray]:
        return dict(outputs)
