"""ONNX Runtime backend: the embedded default (CPU), CUDA execution provider when present."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.checksum import verify_model
from perception_pkg.cards.schema import ModelCard
from perception_pkg.engines.base import BackendUnavailable, Engine, TensorSpec

log = logging.getLogger(__name__)

# onnxruntime type strings -> numpy dtype names
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - a runtime dependency of the package
        raise BackendUnavailable("onnxruntime", f"onnxruntime not installed: {exc}") from exc
    return onnxruntime


def ort_cuda_problem() -> str | None:
    """None when onnxruntime can use CUDA here, else why not."""
    try:
        ort = _ort()
    except BackendUnavailable as exc:
        return exc.reason
    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        return f"CUDAExecutionProvider not in onnxruntime's providers {providers} (CPU build of onnxruntime)"
    return None


class OrtEngine(Engine):
    """``device``: "cpu" or "cuda"; ``threads``: intra-op threads (None = onnxruntime's default)."""

    backend = "onnxruntime"

    def __init__(
        self, card: ModelCard, device: str = "cpu", threads: int | None = None, device_id: int = 0
    ) -> None:
        super().__init__(card)
        verify_model(card)  # the file the card describes, or a CardError (the digest is cached by mtime)
        ort = _ort()
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
        # our graphs are single chains; inter-op threads would only compete with the intra-op pool
        opts.inter_op_num_threads = 1
        if device == "cuda":
            problem = ort_cuda_problem()
            if problem:
                raise BackendUnavailable("onnxruntime-cuda", problem)
            providers: list[Any] = [
                ("CUDAExecutionProvider", {"device_id": device_id}),
                "CPUExecutionProvider",
            ]
        elif device == "cpu":
            providers = ["CPUExecutionProvider"]
        else:
            raise ValueError(f"onnxruntime device must be 'cpu' or 'cuda', got {device!r}")
        self.session = ort.InferenceSession(str(card.model_path), sess_options=opts, providers=providers)
        active = self.session.get_providers()
        if device == "cuda" and "CUDAExecutionProvider" not in active:
            raise BackendUnavailable(
                "onnxruntime-cuda", f"session fell back to {active} (CUDA libraries missing?)"
            )
        self.device = device
        self.threads = threads
        self._provider = active[0]
        by_name = {o.name: o for o in self.session.get_outputs()}
        self._outputs = tuple(
            TensorSpec(
                o.name,
                o.shape if o.shape is not None else _shape(by_name[o.name].shape),
                o.dtype or _ORT_TYPES.get(by_name[o.name].type, "float32"),
            )
            for o in card.outputs
        )
        self._output_names = [o.name for o in card.outputs]

    @property
    def output_specs(self) -> tuple[TensorSpec, ...]:
        return self._outputs

    def describe(self) -> str:
        threads = f", {self.threads} threads" if self.threads else ""
        return f"onnxruntime ({self._provider}{threads})"

    def _run(self, inputs: dict[str, NDArray]) -> dict[str, NDArray]:
        values = self.session.run(self._output_names, inputs)
        return {name: np.asarray(v) for name, v in zip(self._output_names, values, strict=True)}

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]


def _shape(dims: list[Any]) -> tuple[Any, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else str(d) for d in dims)
