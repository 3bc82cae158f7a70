"""``perception card``: model card tools.

``perception card hash CARD...`` writes the sha256 of each card's model file into the card
(``sha256: ...`` after ``model:``), changing nothing else in the file, comments included. Run it after
exporting or replacing a model on purpose; the loader refuses a model whose sha256 is not the card's.

``perception card check CARD...`` loads each card as a node does (fields, the model's sha256, the ONNX
inputs and outputs, the decoder, the torch factory name) and warms the model up on onnxruntime (every
output finite and shaped as the card says). Prints one line per card.

Exit codes: 0 every card hashed / valid, 2 any card or model that is not.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

EXIT_INVALID = 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "card",
        help="model card tools: record a model's sha256, check a card and its model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tools = p.add_subparsers(dest="tool", metavar="TOOL")
    tools.required = True
    h = tools.add_parser("hash", help="write each card's model sha256 into the card")
    h.add_argument("cards", nargs="+", metavar="CARD", help="card.yaml (or its folder)")
    h.set_defaults(func=run_hash)
    c = tools.add_parser("check", help="load each card as a node does and warm its model up")
    c.add_argument("cards", nargs="+", metavar="CARD", help="card.yaml (or its folder)")
    c.set_defaults(func=run_check)


def _card_path(arg: str) -> Path:
    path = Path(arg)
    return path / "card.yaml" if path.is_dir() else path


def with_sha256(text: str, digest: str) -> str:
    """``text`` (a card's YAML) with its top-level ``sha256`` set to ``digest``: the line replaced when
    there is one, else inserted after ``model:`` (or ``name:``); every other line kept as it is."""
    line = f"sha256: {digest}"
    existing = re.compile(r"^sha256:[^\n]*$", re.MULTILINE)
    if existing.search(text):
        return existing.sub(line, text, count=1)
    for key in ("model", "name"):
        anchor = re.search(rf"^{key}:[^\n]*$", text, re.MULTILINE)
        if anchor:
            return text[: anchor.end()] + "\n" + line + text[anchor.end() :]
    return line + "\n" + text


def hash_card(path: Path) -> str:
    """Write the model's sha256 into the card at ``path``; returns the digest. ValueError when the card
    is not a YAML mapping or its model file is missing."""
    import yaml

    from perception_pkg.cards import file_sha256

    text = path.read_text()
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a card (a YAML mapping)")
    model = path.parent / str(data.get("model") or "model.onnx")
    if not model.is_file():
        raise ValueError(f"{path}: model file not found: {model}")
    digest = file_sha256(model)
    new = with_sha256(text, digest)
    want = {**data, "sha256": digest}
    try:
        ok = yaml.safe_load(new) == want
    except yaml.YAMLError:
        ok = False
    if not ok:  # a layout the line edit cannot handle (flow style, odd indentation): rewrite the YAML
        new = yaml.safe_dump(want, sort_keys=False, width=110)
        print(f"{path}: rewritten as plain YAML (comments not kept)", file=sys.stderr)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new)
    tmp.replace(path)
    return digest


def run_hash(args: argparse.Namespace) -> int:
    code = 0
    for arg in args.cards:
        path = _card_path(arg)
        try:
            digest = hash_card(path)
        except (OSError, ValueError) as exc:
            print(f"perception card hash: {exc}", file=sys.stderr)
            code = EXIT_INVALID
            continue
        print(f"{path}: sha256 {digest}")
    return code


def check_card(path: Path) -> str:
    """One line describing a valid card; raises CardError / NonFiniteOutput / ValueError otherwise."""
    from perception_pkg.cards import CardError, load_card
    from perception_pkg.cards.plugins import TORCH_FACTORY_GROUP, plugin_names, unknown
    from perception_pkg.engines import ModelRunner, load_engine
    from perception_pkg.engines.torch_backend import _BY_TARGET, TORCH_FACTORIES

    card = load_card(path)
    src = str(card.source) if card.source else None
    if card.torch is not None:  # the name only: building the network needs torch
        name = card.torch.factory
        if _BY_TARGET.get(name, name) not in TORCH_FACTORIES and name not in plugin_names(
            TORCH_FACTORY_GROUP
        ):
            raise CardError(
                "torch.factory",
                unknown("torch factory", name, sorted(TORCH_FACTORIES), TORCH_FACTORY_GROUP),
                src,
            )
    engine: Any = load_engine(card, backend="onnxruntime", threads=1)
    if len(card.inputs) == 1 and card.inputs[0].is_image:
        ModelRunner(card, engine=engine)  # warms up: outputs finite and shaped as the card says
    else:
        engine.warmup(runs=1)
    engine.close()
    sha = f"sha256 {card.sha256[:12]}..." if card.sha256 else "NO sha256 (perception card hash records it)"
    return f"{path}: ok: {card.name} ({card.task}, decoder {card.decoder.type}, {sha})"


def run_check(args: argparse.Namespace) -> int:
    from perception_pkg.engines import NonFiniteOutput

    code = 0
    for arg in args.cards:
        path = _card_path(arg)
        try:
            print(check_card(path))
        except (OSError, ValueError, NonFiniteOutput) as exc:  # CardError is a ValueError
            print(f"perception card check: {exc}", file=sys.stderr)
            code = EXIT_INVALID
    return code
