"""torch backend: the reference for parity checks, and the GPU fallback where TensorRT is absent.

torch is imported when an engine is made, never at module import, so the runtime works without it.
The network comes from the card's ``torch`` section (``factory: package.module:callable`` plus optional
``weights``, a state dict) or is handed in as a module.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.schema import ModelCard
from perception_pkg.engines.base import BackendUnavailable, Engine, TensorSpec


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailable("torch", f"torch not installed ({exc}); pip install torch==2.13.0") from exc
    return torch


def torch_cuda_problem() -> str | None:
    try:
        torch = _torch()
    except BackendUnavailable as exc:
        return exc.reason
    return None if torch.cuda.is_available() else "torch has no CUDA device (CPU build or no GPU)"


def module_from_card(card: ModelCard) -> Any:
    """Instantiate the card's torch network and load its weights."""
    torch = _torch()
    if card.torch is None:
        raise BackendUnavailable(
            "torch",
            f"card {card.name!r} has no 'torch' section (factory, weights), so there "
            "is no torch definition of this network",
        )
    module_name, _, attr = card.torch.factory.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise BackendUnavailable("torch", f"cannot import {card.torch.factory!r}: {exc}") from exc
    module = factory(**card.torch.kwargs)
    if card.torch.weights is not None:
        state = torch.load(str(card.torch.weights), map_location="cpu", weights_only=True)
        module.load_state_dict(state)
    return module


class TorchEngine(Engine):
    """Eager torch on ``device`` ("cpu" or "cuda"); ``threads`` sets torch's intra-op threads."""

    backend = "torch"

    def __init__(
        self, card: ModelCard, module: Any | None = None, device: str = "cpu", threads: int | None = None
    ) -> None:
        super().__init__(card)
        torch = _torch()
        self._torch = torch
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable("torch-cuda", "torch has no CUDA device (CPU build or no GPU)")
        if threads:
            torch.set_num_threads(int(threads))
        self.device = torch.device(device)
        self.module = (module if module is not None else module_from_card(card)).eval().to(self.device)
        self.threads = threads
        self._names = [o.name for o in card.outputs]
        self._outputs = tuple(TensorSpec(o.name, o.shape, o.dtype or "float32") for o in card.outputs)

    @property
    def output_specs(self) -> tuple[TensorSpec, ...]:
        return self._outputs

    def describe(self) -> str:
        threads = f", {self.threads} threads" if self.threads else ""
        return f"torch eager ({self.device.type}{threads})"

    def _run(self, inputs: dict[str, NDArray]) -> dict[str, NDArray]:
        torch = self._torch
        args = [torch.from_numpy(inputs[s.name]).to(self.device) for s in self.input_specs]
        with torch.inference_mode():
            result = self.module(*args)
        return self._name_outputs(result)

    def _name_outputs(self, result: Any) -> dict[str, NDArray]:
        if isinstance(result, Mapping):
            return {n: result[n].detach().cpu().numpy() for n in self._names}
        if not isinstance(result, Sequence):
            result = [result]
        if len(result) != len(self._names):
            raise ValueError(f"torch module returned {len(result)} outputs, card lists {self._names}")
        return {n: np.asarray(r.detach().cpu().numpy()) for n, r in zip(self._names, result, strict=True)}
