"""Backend selection: ``auto`` = TensorRT if usable, else ONNX Runtime CUDA, else ONNX Runtime CPU.

The decision (:func:`choose_backend`) is a pure function of the probes' answers so it is tested with
fakes; :func:`load_engine` probes the real libraries and logs one line naming the fallback and why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perception_pkg.cards.loader import load_card
from perception_pkg.cards.schema import ModelCard
from perception_pkg.engines.base import Engine, EngineError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "onnxruntime", "onnxruntime-cuda", "torch", "torch-cuda")
_ALIASES = {
    "ort": "onnxruntime",
    "onnxruntime-cpu": "onnxruntime",
    "ort-cpu": "onnxruntime",
    "ort-cuda": "onnxruntime-cuda",
    "trt": "tensorrt",
    "torch-cpu": "torch",
}


@dataclass(frozen=True)
class BackendChoice:
    backend: str  # "tensorrt" | "onnxruntime" | "torch"
    device: str  # "cuda" | "cpu"
    message: str  # why this one; names the fallback when it is one

    @property
    def label(self) -> str:
        return self.backend if self.backend == "tensorrt" else f"{self.backend}-{self.device}"


def normalize_backend(name: str) -> str:
    name = _ALIASES.get(name.lower(), name.lower())
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    return name


def choose_backend(
    requested: str, tensorrt_problem: Callable[[], str | None], ort_cuda_problem: Callable[[], str | None]
) -> BackendChoice:
    """Decide the backend; probes return None when usable, else the reason. Probes run only if needed."""
    requested = normalize_backend(requested)
    if requested == "tensorrt":
        return BackendChoice("tensorrt", "cuda", "TensorRT requested")
    if requested == "onnxruntime":
        return BackendChoice("onnxruntime", "cpu", "onnxruntime on CPU requested")
    if requested == "onnxruntime-cuda":
        return BackendChoice("onnxruntime", "cuda", "onnxruntime CUDA requested")
    if requested in ("torch", "torch-cuda"):
        device = "cuda" if requested == "torch-cuda" else "cpu"
        return BackendChoice("torch", device, f"torch on {device} requested")
    trt_why = tensorrt_problem()
    if trt_why is None:
        return BackendChoice("tensorrt", "cuda", "TensorRT is available")
    ort_why = ort_cuda_problem()
    if ort_why is None:
        return BackendChoice(
            "onnxruntime", "cuda", f"TensorRT unavailable ({trt_why}); falling back to onnxruntime with CUDA"
        )
    return BackendChoice(
        "onnxruntime",
        "cpu",
        f"TensorRT unavailable ({trt_why}) and onnxruntime has no CUDA ({ort_why}); "
        "falling back to onnxruntime on CPU",
    )


def _default_probes() -> tuple[Callable[[], str | None], Callable[[], str | None]]:
    from perception_pkg.engines.onnxruntime_backend import ort_cuda_problem
    from perception_pkg.engines.tensorrt_backend import tensorrt_problem

    return tensorrt_problem, ort_cuda_problem


def load_engine(
    card: ModelCard | str | Path,
    backend: str = "auto",
    *,
    threads: int | None = None,
    precision: str | None = None,
    cache_dir: str | Path | None = None,
    module: Any = None,
    **tensorrt_options: Any,
) -> Engine:
    """An engine for the card on the chosen backend.

    ``threads``: CPU threads (onnxruntime intra-op, torch); ``precision``/``cache_dir`` and further
    keyword options go to TensorRT; ``module``: a torch module for the torch backend (else the card's).
    With ``auto``, a TensorRT failure at build or load time also falls back, with a log line saying so.
    """
    if not isinstance(card, ModelCard):
        card = load_card(card)
    trt_probe, ort_probe = _default_probes()
    choice = choose_backend(backend, trt_probe, ort_probe)
    log_fn = log.warning if "falling back" in choice.message else log.info
    log_fn("%s: %s", card.name, choice.message)
    if choice.backend == "tensorrt":
        from perception_pkg.engines.tensorrt_backend import TensorRTEngine

        try:
            return TensorRTEngine(card, precision=precision, cache_dir=cache_dir, **tensorrt_options)
        except EngineError as exc:  # includes BackendUnavailable; a failed build must not stop the robot
            if normalize_backend(backend) != "auto":
                raise
            log.warning("%s: TensorRT failed (%s); falling back to onnxruntime", card.name, exc)
            reason = getattr(exc, "reason", str(exc))
            choice = choose_backend("auto", lambda: reason, ort_probe)
    if choice.backend == "torch":
        from perception_pkg.engines.torch_backend import TorchEngine

        return TorchEngine(card, module=module, device=choice.device, threads=threads)
    from perception_pkg.engines.onnxruntime_backend import OrtEngine

    return OrtEngine(card, device=choice.device, threads=threads)
