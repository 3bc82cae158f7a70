"""Load a card from YAML and cross-check it against its ONNX file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from perception_pkg.cards.checksum import verify_model
from perception_pkg.cards.errors import CardError
from perception_pkg.cards.schema import InputSpec, ModelCard, OutputSpec, parse_card

# onnx.TensorProto element types -> card dtype names
_ONNX_DTYPES = {1: "float32", 2: "uint8", 6: "int32", 7: "int64", 10: "float16"}


def load_card(path: str | Path, check_onnx: bool = True, check_decoder: bool = True) -> ModelCard:
    """Read ``card.yaml`` (or a folder holding one), validate it, and check it against ``model.onnx``.

    Raises CardError naming the offending field; a missing model file is an error only when
    ``check_onnx`` is set (cards can be validated before the model is exported), and so is a model
    file whose sha256 is not the card's ``sha256`` (checked before the file is parsed).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "card.yaml"
    if not path.is_file():
        raise CardError("", f"card file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CardError("", f"not valid YAML: {exc}", str(path)) from exc
    card = parse_card(data, base_dir=path.parent, source=path)
    if check_onnx:
        check_card_against_onnx(card)
    if check_decoder:
        from perception_pkg.decoders.registry import validate_decoder

        validate_decoder(card)
    return card


def onnx_io(
    model_path: str | Path,
) -> tuple[dict[str, tuple[Any, ...]], dict[str, tuple[Any, ...]], dict[str, str]]:
    """Input and output shapes of an ONNX graph (dims: int, or str for symbolic/unknown) and dtypes."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    dtypes: dict[str, str] = {}

    def shape_of(value: Any) -> tuple[Any, ...]:
        t = value.type.tensor_type
        dtypes[value.name] = _ONNX_DTYPES.get(t.elem_type, f"onnx:{t.elem_type}")
        if not t.HasField("shape"):
            return ()
        return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim)

    inputs = {v.name: shape_of(v) for v in graph.input if v.name not in initializers}
    outputs = {v.name: shape_of(v) for v in graph.output}
    return inputs, outputs, dtypes


def _check_dims(
    card: ModelCard, field: str, card_shape: tuple[Any, ...], onnx_shape: tuple[Any, ...], what: str
) -> None:
    src = str(card.source) if card.source else None
    if not onnx_shape:
        return  # rank unknown in the graph: nothing to check against
    if len(card_shape) != len(onnx_shape):
        raise CardError(
            f"{field}.shape",
            f"card has rank {len(card_shape)} {list(card_shape)} but {what} has "
            f"rank {len(onnx_shape)} {list(onnx_shape)}",
            src,
        )
    for i, (c, o) in enumerate(zip(card_shape, onnx_shape, strict=True)):
        if isinstance(o, int) and o > 0:
            if isinstance(c, str):
                raise CardError(
                    f"{field}.shape[{i}]", f"card says dynamic {c!r} but {what} fixes it to {o}", src
                )
            if c != o:
                raise CardError(f"{field}.shape[{i}]", f"card says {c} but {what} has {o}", src)


def check_card_against_onnx(card: ModelCard) -> None:
    """The model file is the one the card's sha256 names; every card input is a graph input with a
    compatible shape; every card output exists in the graph."""
    src = str(card.source) if card.source else None
    verify_model(card)  # CardError for a missing file or another sha256, before parsing what it holds
    g_in, g_out, dtypes = onnx_io(card.model_path)
    what = card.model_path.name
    card_in = {s.name for s in card.inputs}
    missing = sorted(set(g_in) - card_in)
    if missing:
        raise CardError("inputs", f"{what} has inputs {missing} the card does not describe", src)
    for i, spec in enumerate(card.inputs):
        _check_io(card, f"inputs[{i}]", spec, g_in, dtypes, what, src)
    for i, out in enumerate(card.outputs):
        _check_io(card, f"outputs[{i}]", out, g_out, dtypes, what, src)


def _check_io(
    card: ModelCard,
    field: str,
    spec: InputSpec | OutputSpec,
    graph: dict[str, tuple[Any, ...]],
    dtypes: dict[str, str],
    what: str,
    src: str | None,
) -> None:
    if spec.name not in graph:
        kind = "inputs" if field.startswith("inputs") else "outputs"
        raise CardError(f"{field}.name", f"{spec.name!r} is not among {what}'s {kind} {sorted(graph)}", src)
    if spec.shape is not None:
        _check_dims(card, field, spec.shape, graph[spec.name], what)
    if spec.dtype is not None and dtypes.get(spec.name) not in (None, spec.dtype):
        raise CardError(f"{field}.dtype", f"card says {spec.dtype} but {what} has {dtypes[spec.name]}", src)
