"""Engines: one interface over ONNX Runtime (embedded default), TensorRT 10 (robot path) and torch.

``load_engine(card, backend="auto")`` -> :class:`Engine` with ``infer(dict) -> dict``, ``input_specs``,
``output_specs`` and ``warmup()``; ``ModelRunner(card)`` adds the card's preprocessing and decoder.
Backends import their libraries lazily: nothing here needs torch, TensorRT or a GPU to import.
"""

from perception_pkg.engines.base import (
    BackendUnavailable,
    Engine,
    EngineError,
    NonFiniteOutput,
    TensorSpec,
    check_outputs,
)
from perception_pkg.engines.profiles import InputProfile, ShapeProfile, profile_from_card
from perception_pkg.engines.runner import ModelRunner
from perception_pkg.engines.select import BACKENDS, BackendChoice, choose_backend, load_engine
from perception_pkg.engines.trt_cache import EngineCache, EngineKey, ensure_engine, io_problem

__all__ = [
    "BACKENDS",
    "BackendChoice",
    "BackendUnavailable",
    "Engine",
    "EngineCache",
    "EngineError",
    "EngineKey",
    "InputProfile",
    "ModelRunner",
    "NonFiniteOutput",
    "ShapeProfile",
    "TensorSpec",
    "check_outputs",
    "choose_backend",
    "ensure_engine",
    "io_problem",
    "load_engine",
    "profile_from_card",
]
