"""torch backend: the reference for parity checks, and the GPU fallback where TensorRT is absent.

torch is imported when an engine is made, never at module import, so the runtime works without it.
The network comes from the card's ``torch`` section or is handed in as a module. ``torch.factory`` is a
name: one of :data:`TORCH_FACTORIES` (the project's networks), or one an installed package registers in
the entry-point group ``perception_pkg.torch_factories`` (:mod:`perception_pkg.cards.plugins`). A card
never names an import path. ``kwargs`` go to the factory, ``weights`` is a state dict loaded with
``weights_only=True`` (tensors only, no pickled objects).

torch is never chosen for a card on its own: ``auto`` means TensorRT or onnxruntime
(:mod:`perception_pkg.engines.select`); the torch backend runs when a caller asks for it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.errors import CardError
from perception_pkg.cards.plugins import TORCH_FACTORY_GROUP, load_plugin, unknown
from perception_pkg.cards.schema import ModelCard
from perception_pkg.engines.base import BackendUnavailable, Engine, TensorSpec

#: torch.factory names a card may use -> the project's constructor (module:attribute, imported on use)
TORCH_FACTORIES: dict[str, str] = {
    "sim_completion": "perception_pkg.training.completion_net:build",
    "sim_detector": "perception_pkg.training.detector_net:SimDetector",
    "sim_pose": "perception_pkg.training.pose_model:build",
    "tiny_centernet": "perception_pkg.training.models:TinyCenterNet",
    "tiny_topdown": "perception_pkg.training.models:TinyTopDown",
    "tiny_yolov8": "perception_pkg.training.models:TinyYolov8",
    "tiny_yolox": "perception_pkg.training.models:TinyYolox",
}
# Cards written before the names existed spell an entry by its target; those spellings (and only
# those) mean the same entries. Looked up in this table like any name, never imported as given.
_BY_TARGET = {target: name for name, target in TORCH_FACTORIES.items()}


def torch_factory(name: str, source: str | None = None) -> Callable[..., Any]:
    """The constructor a card's ``torch.factory`` names; CardError for a name nobody registered."""
    target = TORCH_FACTORIES.get(_BY_TARGET.get(name, name))
    if target is not None:
        module, _, attr = target.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    else:
        factory = load_plugin(TORCH_FACTORY_GROUP, name, "torch.factory", source)
        if factory is None:
            raise CardError(
                "torch.factory",
                unknown("torch factory", name, sorted(TORCH_FACTORIES), TORCH_FACTORY_GROUP),
                source,
            )
    if not callable(factory):
        raise CardError("torch.factory", f"{name!r} does not name a callable", source)
    return factory


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
    source = str(card.source) if card.source else None
    factory = torch_factory(card.torch.factory, source)
    try:
        module = factory(**card.torch.kwargs)
    except TypeError as exc:  # kwargs the constructor does not take
        raise CardError(
            "torch.kwargs", f"{card.torch.factory!r} does not accept them: {exc}", source
        ) from exc
    if not isinstance(module, torch.nn.Module):
        raise CardError(
            "torch.factory",
            f"{card.torch.factory!r} returned a {type(module).__name__}, not a torch module",
            source,
        )
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
