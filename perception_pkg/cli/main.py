"""``perception`` entry point: one subcommand per job, each in its own module, imported on use.

Each module in COMMANDS defines ``register(subparsers) -> None``; the parser it adds sets ``func`` to a
callable taking the parsed namespace and returning an exit code. Modules are imported lazily so that
``perception --help`` and light subcommands do not pay for heavy imports (onnxruntime, open3d, torch).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# subcommand name -> module defining register(); keep sorted
COMMANDS: dict[str, str] = {
    "bench": "perception_pkg.cli.bench_cmd",
    "build-engine": "perception_pkg.cli.engine_cmd",
    "card": "perception_pkg.cli.card_cmd",
    "demo": "perception_pkg.cli.replay_cmd",
    "eval": "perception_pkg.cli.eval_cmd",
    "replay": "perception_pkg.cli.replay_cmd",
    "run": "perception_pkg.cli.run_cmd",
    "sim": "perception_pkg.cli.sim_cmd",
    "train": "perception_pkg.cli.train_cmd",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perception", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    seen: set[str] = set()
    for name, module in COMMANDS.items():
        if only is not None and name != only:
            continue
        if module in seen:
            continue
        seen.add(module)
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # import only the module of the requested command when it is known
    only = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only if only in COMMANDS else None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
