"""The engine interface every backend implements: ``infer(dict of arrays) -> dict of arrays``.

A model's outputs are checked, not trusted: :meth:`Engine.warmup` runs it and requires every output to be
finite and shaped as the card says (:func:`check_outputs`), and :class:`~perception_pkg.engines.runner.
ModelRunner` checks, on every inference, the outputs its decoder reads for non-finite values. A model
whose weights were overwritten with NaN (it still parses and runs) is refused at start-up, and one whose
outputs turn non-finite later raises :class:`NonFiniteOutput` per frame, which a node counts as a
processing error.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.errors import CardError
from perception_pkg.cards.schema import Dim, ModelCard


class EngineError(RuntimeError):
    """An engine could not be built, loaded or run."""


class NonFiniteOutput(ValueError):
    """A model returned NaN or infinite values: its results cannot be used. Not a MessageFormatError: the
    input was fine, the model is not (a node counts it under errors, at ERROR level)."""

    def __init__(self, model: str, bad: dict[str, tuple[int, int]], when: str = "inference") -> None:
        self.model = model
        self.bad = bad  # output name -> (non-finite values, values)
        parts = ", ".join(f"{name} {n}/{total}" for name, (n, total) in bad.items())
        super().__init__(f"{model}: non-finite values at {when} in output {parts} (NaN or inf)")


def non_finite(outputs: Mapping[str, NDArray]) -> dict[str, tuple[int, int]]:
    """Outputs holding NaN or inf: name -> (how many, of how many). Float outputs only (others cannot).

    Any NaN or inf makes an array's sum NaN or inf, so a finite sum proves the array finite: the
    common all-finite case costs one reduction in the array's own dtype and no temporary array (2.4x
    faster than a float64 sum, which converts every element: 0.16 against 0.39 ms for the shipped
    detector's 0.8 M outputs, `benchmarks/bench_budget.py`). A non-finite sum may also be an overflow
    of large finite values, so the exact count decides, taken only for an output whose sum fails."""
    bad: dict[str, tuple[int, int]] = {}
    for name, arr in outputs.items():
        a = np.asarray(arr)
        if a.dtype.kind != "f" or a.size == 0:
            continue
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is decided below, not warned
            total = np.add.reduce(a, axis=None)
        if np.isfinite(total):
            continue
        n_bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if n_bad:
            bad[name] = (n_bad, int(a.size))
    return bad


def check_outputs(
    card: ModelCard, outputs: Mapping[str, NDArray], inputs: Mapping[str, NDArray] | None = None
) -> None:
    """Warm-up check: every card output is there, finite, with the card's rank and fixed dims (a dynamic
    dim named like an input's takes that input's size). CardError for a shape the card does not
    describe, NonFiniteOutput for NaN or inf."""
    src = str(card.source) if card.source else None
    sizes: dict[str, int] = {}
    for spec in card.inputs:
        if inputs is not None and spec.name in inputs:
            for want, got in zip(spec.shape, np.shape(inputs[spec.name]), strict=False):
                if isinstance(want, str):
                    sizes[want] = int(got)
    for i, spec in enumerate(card.outputs):
        if spec.name not in outputs:
            raise CardError(f"outputs[{i}].name", f"the model returned no output {spec.name!r}", src)
        if spec.shape is None:
            continue
        shape = np.shape(outputs[spec.name])
        if len(shape) != len(spec.shape):
            raise CardError(
                f"outputs[{i}].shape", f"card says {list(spec.shape)}, the model returned shape {shape}", src
            )
        for axis, (want, got) in enumerate(zip(spec.shape, shape, strict=True)):
            want = sizes.get(want, want) if isinstance(want, str) else want
            if isinstance(want, int) and want != got:
                raise CardError(
                    f"outputs[{i}].shape[{axis}]",
                    f"card says {list(spec.shape)}, the model returned shape {shape}",
                    src,
                )
    bad = non_finite({o.name: outputs[o.name] for o in card.outputs})
    if bad:
        raise NonFiniteOutput(card.name, bad, "warm-up")


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
        """Run a few times so lazy allocations and kernel selection are out of the first real frame, and
        check the outputs (:func:`check_outputs`: CardError for a shape the card does not describe,
        NonFiniteOutput for NaN or inf on these zero inputs)."""
        inputs = self.dummy_inputs()
        for _ in range(runs):
            check_outputs(self.card, self.infer(inputs), inputs)

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
