"""Loading a detector from a card: the one place a ``model_card`` setting becomes a :class:`Detector`.

Nodes, pipelines, evaluation, benchmarks and the CLI all call :func:`load_detector`, so a missing card,
a card of another task or an engine that cannot start gives the same one-line error everywhere.
"""

from __future__ import annotations

from pathlib import Path

from perception_pkg.detection.detector import Detector, default_detector_card
from perception_pkg.paths import models_dir


def resolve_card(card: str | Path | None) -> Path:
    """The card file a ``model_card`` setting names: empty/None/"default" -> the shipped detector; a
    relative path that does not exist from the working directory is looked up under ``models/`` (so a
    config can say ``sim_detector/card.yaml`` on any machine); a folder means its ``card.yaml``."""
    if card is None or str(card) in ("", "default"):
        return default_detector_card()
    path = Path(card).expanduser()
    if not path.is_absolute() and not path.exists():
        path = models_dir() / path
    return path / "card.yaml" if path.is_dir() else path


def load_detector(
    card: str | Path | None = None,
    backend: str = "auto",
    *,
    threads: int = 0,
    score_threshold: float = 0.0,
    lift_3d: bool = True,
    where: str = "model card",
) -> Detector:
    """A Detector for the card, or ValueError with one message that names ``where`` (e.g. the parameter),
    the card and what is wrong (missing file, not a detection card, decoder mismatch, engine that cannot
    load)."""
    path = resolve_card(card)
    if not path.is_file():
        shipped = " (the shipped detector is written by training; name another card)"
        raise ValueError(f"{where}: model card not found: {path}{shipped if not card else ''}")
    try:
        return Detector.from_card(
            path,
            backend=backend,
            score_threshold=score_threshold,
            lift_3d=lift_3d,
            threads=threads or None,
        )
    except Exception as exc:  # CardError, a non-detection card, an engine that cannot start: one message
        raise ValueError(f"{where}: cannot load detector from {path}: {type(exc).__name__}: {exc}") from exc
