"""Card-driven preprocessing: camera image (and person boxes) -> network tensor + the map it applied."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from perception_pkg.cards.schema import InputSpec, ModelCard
from perception_pkg.preprocess.affine import AffineTransform
from perception_pkg.preprocess.geometry import letterbox, stretch, topdown_crops, unwarp_image
from perception_pkg.preprocess.normalize import Normalizer


@dataclass(frozen=True)
class Prepared:
    """A network-ready batch and how to map results back to the source image."""

    tensor: NDArray
    # source image -> network input, the map results are taken back with (for a letterbox with
    # ``inverse: ratio``, the upstream ratio map rather than the exact resize); batched for top-down crops
    transform: AffineTransform
    source_hw: tuple[int, int]


class Preprocessor:
    """Applies one image input's resize policy and normalisation, as the card says."""

    def __init__(self, spec: InputSpec) -> None:
        if not spec.is_image:
            raise ValueError(f"input {spec.name!r} is a plain tensor, not an image")
        self.spec = spec
        self.size_hw = (spec.height, spec.width)
        self.resize = spec.resize
        self.normalizer = Normalizer(spec.scale, spec.mean, spec.std, spec.color, spec.layout, spec.dtype)

    @classmethod
    def from_card(cls, card: ModelCard, input_name: str | None = None) -> Preprocessor:
        return cls(card.input(input_name) if input_name else card.image_input)

    @property
    def is_topdown(self) -> bool:
        return self.resize.policy == "topdown"

    def __call__(self, image: NDArray, boxes: ArrayLike | None = None) -> Prepared:
        """One BGR image -> batch of 1, or for top-down models one crop per xyxy box."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a BGR image (H, W, 3), got shape {image.shape}")
        src_hw = (int(image.shape[0]), int(image.shape[1]))
        r = self.resize
        if r.policy == "topdown":
            if boxes is None:
                boxes = np.array([[0.0, 0.0, src_hw[1], src_hw[0]]])
            crops, transform = topdown_crops(
                image,
                boxes,
                self.size_hw,
                r.aspect_ratio,
                r.padding,
                r.pad_value,
                r.interpolation,
                crop=r.crop,
                aspect=r.aspect,
            )
            return Prepared(self.normalizer(crops), transform, src_hw)
        if boxes is not None:
            raise ValueError(f"resize policy {r.policy!r} takes whole images, not boxes")
        if r.policy == "letterbox":
            resized, transform = letterbox(
                image, self.size_hw, r.pad_value, r.anchor, r.interpolation, r.rounding, r.inverse
            )
        elif r.policy == "stretch":
            resized, transform = stretch(image, self.size_hw, r.interpolation)
        else:
            if src_hw != self.size_hw:
                raise ValueError(f"resize policy 'none' needs {self.size_hw} images, got {src_hw}")
            resized, transform = image, AffineTransform.identity()
        return Prepared(self.normalizer(resized), transform, src_hw)

    def restore_image(self, tensor: NDArray, prepared: Prepared) -> NDArray[np.uint8]:
        """Inverse for image outputs: network tensor (same spec) -> BGR uint8 at the source size."""
        images = self.normalizer.invert(tensor)
        transform = prepared.transform
        out = [
            unwarp_image(
                img,
                transform[i] if transform.batched else transform,
                prepared.source_hw,
                self.resize.interpolation,
            )
            for i, img in enumerate(images)
        ]
        return np.stack(out)
