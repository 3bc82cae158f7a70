"""The engine interface every backend implements: ``infer(dict of arrays) -> dict of arrays``."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.schema import Dim, ModelCard


class EngineError(RuntimeError):
    """An engine could not be built, loaded or run."""


class BackendUnavailable(EngineError):
    """A backend's library, device or input (e.g. a torch definition) is missing; ``reason`` says which."""

    def __init__(self, backend: str, reason: str) -> None:
        self.backend = backend
        self.reason = reason
        super().__init__(f"{backend} unavailable: {reason}")


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (str = dynamic dim, with its [min, opt, max] in ``ranges``) and numpy dtype name."""

    name: str
    shape: tuple[Dim, ...] | None
    dtype: str
    ranges: Mapping[str, tuple[int, int, int]] | None = None

    def concrete(self, which: str = "opt") -> tuple[int, ...]:
        if self.shape is None:
            raise ValueError(f"shape of {self.name!r} is unknown")
        pick = {"min": 0, "opt": 1, "max": 2}[which]
        ranges = self.ranges or {}
        return tuple(d if isinstance(d, int) else ranges[d][pick] for d in self.shape)


def card_input_specs(card: ModelCard) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(s.name, s.shape, s.dtype, dict(s.dynamic)) for s in card.inputs)


class Engine(abc.ABC):
    """One network on one backend. Construct through :func:`perception_pkg.engines.load_engine`.

    ``infer`` checks input names, ranks, fixed dims and dynamic ranges against the card, casts to the
    card's dtype and returns every output as a numpy array the caller owns.
    """

    backend: ClassVar[str] = "?"

    def __init__(self, card: ModelCard) -> None:
        self.card = card
        self._inputs = card_input_specs(card)

    @property
    def input_specs(self) -> tuple[TensorSpec, ...]:
        return self._inputs

    @property
    @abc.abstractmethod
    def output_specs(self) -> tuple[TensorSpec, ...]: ...

    @abc.abstractmethod
    def _run(self, inputs: dict[str, NDArray]) -> dict[str, NDArray]: ...

    def describe(self) -> str:
        """Backend and device, for logs and benchmark tables."""
        return self.backend

    def infer(self, inputs: Mapping[str, NDArray]) -> dict[str, NDArray]:
        return self._run(self.check_inputs(inputs))

    def check_inputs(self, inputs: Mapping[str, NDArray]) -> dict[str, NDArray]:
        names = {s.name for s in self._inputs}
        if set(inputs) != names:
            raise ValueError(f"{self.card.name}: expected inputs {sorted(names)}, got {sorted(inputs)}")
        out: dict[str, NDArray] = {}
        for spec in self._inputs:
            arr = np.ascontiguousarray(inputs[spec.name], dtype=spec.dtype)
            _check_shape(self.card.name, spec, arr.shape)
            out[spec.name] = arr
        return out

    def dummy_inputs(self, which: str = "opt") -> dict[str, NDArray]:
        """Zero inputs at the min/opt/max shape (warm-up, benchmarks, engine building)."""
        return {s.name: np.zeros(s.concrete(which), dtype=s.dtype) for s in self._inputs}

    def warmup(self, runs: int = 2) -> None:
        """Run a few times so lazy allocations and kernel selection are out of the first real frame."""
        inputs = self.dummy_inputs()
        for _ in range(runs):
            self.infer(inputs)

    def close(self) -> None:  # noqa: B027 - optional hook; most backends free with the object
        """Free backend resources (device memory, sessions)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _check_shape(model: str, spec: TensorSpec, shape: tuple[int, ...]) -> None:
    if spec.shape is None:
        return
    if len(shape) != len(spec.shape):
        raise ValueError(
            f"{model}: input {spec.name!r} needs rank {len(spec.shape)} {list(spec.shape)}, got shape {shape}"
        )
    ranges = spec.ranges or {}
    for axis, (want, got) in enumerate(zip(spec.shape, shape, strict=True)):
        if isinstance(want, int):
            if want != got:
                raise ValueError(
                    f"{model}: input {spec.name!r} axis {axis} must be {want}, got shape {shape}"
                )
        elif want in ranges:
            lo, _, hi = ranges[want]
            if not lo <= got <= hi:
                raise ValueError(
                    f"{model}: input {spec.name!r} axis {axis} ({want}) must be in [{lo}, {hi}], got {got}"
                )
