"""Third-party code a card may name: only what an installed package registers as an entry point.

A card is untrusted input. It names its decoder (``decoder.type``) and, for the torch reference
backend, its network (``torch.factory``) by name, and a name is looked up, never imported:

- names the project defines are in its registries: ``perception_pkg/decoders/registry.py`` (DECODERS)
  and ``perception_pkg/engines/torch_backend.py`` (TORCH_FACTORIES);
- any other name must be registered by an installed distribution in the entry-point group
  ``perception_pkg.decoders`` (a :class:`~perception_pkg.decoders.base.Decoder` subclass) or
  ``perception_pkg.torch_factories`` (a callable returning a ``torch.nn.Module``), e.g. in that
  package's ``pyproject.toml``::

      [project.entry-points."perception_pkg.decoders"]
      my_head = "my_package.decoders:MyHeadDecoder"

Installing that package is the explicit opt-in. Only the entry point with exactly the card's name is
loaded, and only when a card names it; a card that spells an import path (``os:system``) gets a
CardError and nothing is imported.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from perception_pkg.cards.errors import CardError

DECODER_GROUP = "perception_pkg.decoders"
TORCH_FACTORY_GROUP = "perception_pkg.torch_factories"


def _registered(group: str, name: str) -> list[EntryPoint]:
    return [ep for ep in entry_points(group=group) if ep.name == name]


def plugin_names(group: str) -> list[str]:
    """The names installed packages register in ``group``."""
    return sorted({ep.name for ep in entry_points(group=group)})


def load_plugin(group: str, name: str, field: str, source: str | None = None) -> Any | None:
    """The object installed entry point ``name`` of ``group`` names (imported now), or None when no
    installed package registers that name. CardError when several do, or it fails to load."""
    found = _registered(group, name)
    if not found:
        return None
    if len({ep.value for ep in found}) > 1:
        values = ", ".join(sorted({ep.value for ep in found}))
        raise CardError(field, f"{name!r} is registered by several installed packages ({values})", source)
    ep = found[0]
    try:
        return ep.load()
    except Exception as exc:  # the plugin package is broken: say which one
        raise CardError(
            field, f"entry point {name!r} = {ep.value!r} ({group}) fails to load: {exc}", source
        ) from exc


def unknown(kind: str, name: str, known: list[str], group: str) -> str:
    """The CardError text for a name neither the project nor an installed package registers."""
    path = " (a card never names an import path)" if ":" in name or "." in name else ""
    installed = plugin_names(group)
    extra = f"; installed packages add {installed}" if installed else ""
    return (
        f"unknown {kind} {name!r}{path}: known are {known}{extra}. Third-party code runs only when an "
        f"installed package registers it in entry-point group {group!r} (models/README.md)"
    )
