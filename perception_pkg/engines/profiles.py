"""TensorRT optimisation profiles (min / opt / max shape per input) derived from the card.

Static inputs get min = opt = max. Each named dimension takes its ``dynamic: {name: [min, opt, max]}``
range from the card; ``max_batch`` widens a dimension named ``batch`` for ahead-of-time builds.
"""

from __future__ import annotations

from dataclasses import dataclass

from perception_pkg.cards.errors import CardError
from perception_pkg.cards.schema import ModelCard

Shape = tuple[int, ...]


@dataclass(frozen=True)
class InputProfile:
    name: str
    min: Shape
    opt: Shape
    max: Shape

    @property
    def dynamic(self) -> bool:
        return not (self.min == self.opt == self.max)


@dataclass(frozen=True)
class ShapeProfile:
    inputs: tuple[InputProfile, ...]

    @property
    def dynamic(self) -> bool:
        return any(p.dynamic for p in self.inputs)

    def __getitem__(self, name: str) -> InputProfile:
        for p in self.inputs:
            if p.name == name:
                return p
        raise KeyError(name)

    def as_key(self) -> list[list[object]]:
        """JSON-able form, part of the engine cache key."""
        return [[p.name, list(p.min), list(p.opt), list(p.max)] for p in self.inputs]


def profile_from_card(card: ModelCard, max_batch: int | None = None) -> ShapeProfile:
    profiles = []
    for i, spec in enumerate(card.inputs):
        ranges = dict(spec.dynamic)
        if max_batch is not None:
            if "batch" not in ranges:
                if spec.shape and spec.shape[0] != max_batch and isinstance(spec.shape[0], int):
                    raise CardError(
                        f"inputs[{i}].shape[0]",
                        f"batch is fixed to {spec.shape[0]} in the card "
                        f"(and the ONNX); cannot build for batch {max_batch}",
                    )
            else:
                lo, opt, _ = ranges["batch"]
                if max_batch < lo:
                    raise CardError(f"inputs[{i}].dynamic.batch", f"max batch {max_batch} is below min {lo}")
                ranges["batch"] = (lo, min(opt, max_batch), max_batch)
        dims = [[d, d, d] if isinstance(d, int) else list(ranges[d]) for d in spec.shape]
        profiles.append(
            InputProfile(
                spec.name, tuple(d[0] for d in dims), tuple(d[1] for d in dims), tuple(d[2] for d in dims)
            )
        )
    return ShapeProfile(tuple(profiles))
