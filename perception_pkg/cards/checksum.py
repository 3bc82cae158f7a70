"""The model file's sha256, which a card carries (``sha256:``) and the loader verifies.

A model is input too: a file that was truncated, replaced, re-exported or had its weights overwritten
(NaN) still parses as ONNX and runs. The card records the sha256 of the file it describes (written by
the exporters and by ``perception card hash``); :func:`verify_model` refuses any other file with a
CardError naming both digests. A card without ``sha256`` still loads, with one warning per model file
saying how to add it (cards are also written by hand for third-party models).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from pathlib import Path

from perception_pkg.cards.errors import CardError
from perception_pkg.cards.schema import ModelCard

log = logging.getLogger(__name__)

SHA256 = re.compile(r"^[0-9a-f]{64}$")
_cache: dict[tuple[str, int, int, int], str] = {}  # (path, size, mtime_ns, inode) -> digest
_lock = threading.Lock()
_warned: set[str] = set()


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file; remembered while its path, size, mtime and inode stay the same (a model
    loaded by several runners or checked at card load and engine load is read once)."""
    path = Path(path)
    st = os.stat(path)
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    with _lock:
        if key in _cache:
            return _cache[key]
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _lock:
        _cache[key] = digest
    return digest


def verify_model(card: ModelCard) -> None:
    """CardError when the model file's sha256 is not the card's; a warning (once) when the card has none."""
    src = str(card.source) if card.source else None
    if not card.model_path.is_file():
        raise CardError("model", f"model file not found: {card.model_path}", src)
    actual = file_sha256(card.model_path)
    if card.sha256 is None:
        key = str(card.model_path.resolve())
        if key not in _warned:
            _warned.add(key)
            log.warning(
                "%s: the card has no sha256, so %s is not checked; `perception card hash %s` records it",
                card.name, card.model_path.name, card.source or "CARD",
            )  # fmt: skip
        return
    if actual != card.sha256:
        raise CardError(
            "sha256",
            f"{card.model_path.name} has sha256 {actual}, the card says {card.sha256}: it is not the model "
            "the card describes (corrupt, replaced or re-exported); if it is the one you mean, "
            "`perception card hash` records its checksum",
            src,
        )
