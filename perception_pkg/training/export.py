"""torch -> ONNX export (opset >= 17, static shapes unless asked), onnx.checker, and ORT-vs-torch parity."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from numpy.typing import NDArray

log = logging.getLogger(__name__)

MIN_OPSET = 17
# torch's dynamo exporter implements opset 18 and down-converts anything lower with a warning
DYNAMO_OPSET = 18


def export_onnx(
    module: torch.nn.Module,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    path: str | Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    opset: int | None = None,
    dynamic_batch: bool = False,
    max_batch: int = 64,
    dynamo: bool = True,
) -> Path:
    """Export ``module`` (eval mode) and check the result with onnx.checker (full shape inference).

    ``dynamic_batch`` names axis 0 of every input and output ``batch``; otherwise all shapes are static,
    which is what TensorRT and ORT optimise best. ``dynamo`` picks torch's current exporter (needs
    onnxscript); ``False`` uses the TorchScript exporter, which is faster for small graphs.
    """
    opset = opset or (DYNAMO_OPSET if dynamo else MIN_OPSET)
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} < {MIN_OPSET}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    module = module.eval()
    with torch.no_grad(), warnings.catch_warnings(), _quiet_exporter_logs():
        # the TorchScript exporter announces its age; torch.export warns about its own internals
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        if dynamo:
            dynamic_shapes = None
            if dynamic_batch:
                batch = torch.export.Dim("batch", min=1, max=max_batch)
                dynamic_shapes = tuple({0: batch} for _ in args)
            program = torch.onnx.export(
                module,
                args,
                dynamo=True,
                opset_version=opset,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_shapes=dynamic_shapes,
                verbose=False,
            )
            program.save(str(path))
        else:
            axes = {n: {0: "batch"} for n in (*input_names, *output_names)} if dynamic_batch else None
            torch.onnx.export(
                module,
                args,
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes=axes,
                do_constant_folding=True,
            )
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    got = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if got < MIN_OPSET:
        raise RuntimeError(f"exported opset {got} < {MIN_OPSET}")
    return path


@contextlib.contextmanager
def _quiet_exporter_logs() -> Iterator[None]:
    """The dynamo exporter logs every optimisation pass at INFO; keep the CLI's output readable."""
    loggers = [logging.getLogger(n) for n in ("onnxscript", "onnx_ir", "torch.onnx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@dataclass(frozen=True)
class OutputParity:
    name: str
    max_abs_diff: float
    output_range: float

    @property
    def relative(self) -> float:
        """Max |ORT - torch| relative to the torch output's range (max - min)."""
        return self.max_abs_diff / max(self.output_range, 1e-12)


@dataclass(frozen=True)
class ParityReport:
    outputs: tuple[OutputParity, ...]
    tolerance: float

    @property
    def passed(self) -> bool:
        return all(o.relative < self.tolerance for o in self.outputs)

    @property
    def worst(self) -> float:
        return max(o.relative for o in self.outputs)

    def __str__(self) -> str:
        rows = ", ".join(f"{o.name}: {o.max_abs_diff:.3g} / range {o.output_range:.3g}" for o in self.outputs)
        return f"parity {'ok' if self.passed else 'FAILED'} (tolerance {self.tolerance:g} of range): {rows}"


def parity_check(
    module: torch.nn.Module, onnx_path: str | Path, inputs: Mapping[str, NDArray], tolerance: float = 1e-4
) -> ParityReport:
    """Run torch (eval, CPU, fp32) and onnxruntime (CPU) on the same inputs and compare every output.

    Inputs are passed to the module positionally in the ONNX graph's input order.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    out_names = [o.name for o in session.get_outputs()]
    feeds = {n: np.ascontiguousarray(inputs[n], dtype=np.float32) for n in names}
    ort_out = session.run(out_names, feeds)
    with torch.no_grad():
        ref = module.eval()(*[torch.from_numpy(feeds[n]) for n in names])
    if isinstance(ref, torch.Tensor):
        ref = (ref,)
    if isinstance(ref, Mapping):
        ref = tuple(ref[n] for n in out_names)
    results = []
    for name, o, r in zip(out_names, ort_out, ref, strict=True):
        r = r.detach().cpu().numpy().astype(np.float64)
        o = np.asarray(o, dtype=np.float64)
        if o.shape != r.shape:
            raise AssertionError(f"output {name!r}: ORT shape {o.shape} != torch shape {r.shape}")
        results.append(OutputParity(name, float(np.abs(o - r).max()), float(r.max() - r.min())))
    return ParityReport(tuple(results), tolerance)


def card_with_sha256(card: Mapping[str, object], directory: str | Path) -> dict[str, object]:
    """``card`` (a card dict about to be written to ``directory``) with the sha256 of its model file
    (``directory / card["model"]``, default ``model.onnx``), placed right after ``model``; the loader
    refuses any other file. Call it after the model is exported."""
    from perception_pkg.cards.checksum import file_sha256

    model = Path(directory) / str(card.get("model") or "model.onnx")
    digest = file_sha256(model)
    out: dict[str, object] = {}
    for key, value in card.items():
        if key == "sha256":
            continue
        out[key] = value
        if key == "model":
            out["sha256"] = digest
    if "sha256" not in out:  # no model key (the default model.onnx): after the name
        items = list(out.items())
        at = next((i + 1 for i, (k, _) in enumerate(items) if k == "name"), 0)
        out = dict([*items[:at], ("sha256", digest), *items[at:]])
    return out
