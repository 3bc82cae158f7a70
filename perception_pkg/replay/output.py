"""Output folders we write into, and never delete what we did not write.

A folder is ours when it holds the marker file ``.perception-output``, a small JSON file naming the
entries we wrote there (``summary.json``, ``bag``, plots ...). The rules, for ``perception replay``,
``perception demo`` and :func:`perception_pkg.replay.replay_bag`:

- a path that does not exist, or an empty folder, is taken: the marker is written before any output;
- a folder holding the marker is ours: the entries it names from an earlier run are replaced with
  ``force`` (``perception demo`` always replaces its own), refused without it; anything else in the
  folder is never touched;
- a non-empty folder without the marker is refused, ``force`` or not;
- a path that is a file is refused.

The marker lists what a run will write *before* it writes it, so the outputs of a run that crashed or
was interrupted are still known as ours.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MARKER = ".perception-output"


class OutputFolderError(ValueError):
    """An output folder that cannot be used as it is; the message says why and what to do, in one line."""


def _read_marker(folder: Path) -> list[str] | None:
    marker = folder / MARKER
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text())
        outputs = data["outputs"]
        if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
            raise TypeError("outputs is not a list of names")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OutputFolderError(
            f"{folder}: its {MARKER} does not parse ({type(exc).__name__}: {exc}); "
            f"remove the folder yourself, or choose another --out"
        ) from exc
    # only plain names inside the folder: a marker must not make us delete anything outside it
    return [o for o in outputs if o and "/" not in o and "\\" not in o and o not in (".", "..", MARKER)]


def marked_outputs(folder: str | Path) -> list[str]:
    """The entries the marker of ``folder`` names (empty when there is none); OutputFolderError when it
    does not parse."""
    return _read_marker(Path(folder)) or []


def mark(folder: str | Path, outputs: Iterable[str], written_by: str = "perception") -> None:
    """Write the marker of ``folder`` naming ``outputs`` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(set(outputs))
    text = json.dumps({"written_by": written_by, "outputs": names}, indent=1)
    (folder / MARKER).write_text(text + "\n")


@dataclass
class OutputFolder:
    """A checked output folder (:func:`check_output`); :meth:`claim` removes our earlier outputs."""

    path: Path
    earlier: list[str]  # entries an earlier run of ours wrote that exist now
    written_by: str = "perception"

    def claim(self, outputs: Iterable[str]) -> None:
        """Remove our earlier outputs (only those), then write the marker naming ``outputs``."""
        self.path.mkdir(parents=True, exist_ok=True)
        for name in self.earlier:
            entry = self.path / name
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.exists() or entry.is_symlink():
                entry.unlink()
        self.earlier = []
        mark(self.path, outputs, self.written_by)


def check_output(path: str | Path, force: bool = False, written_by: str = "perception") -> OutputFolder:
    """Check ``path`` against the rules of the module docstring; OutputFolderError when it cannot be used.
    Nothing is created or removed here (:meth:`OutputFolder.claim` does that)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputFolderError(f"--out {path} is a file, not a folder; choose a folder (it is created)")
    if not path.exists():
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise OutputFolderError(f"--out {path}: {parent} is a file, not a folder")
                break
        return OutputFolder(path, [], written_by)
    entries = sorted(p.name for p in path.iterdir())
    ours = _read_marker(path)
    if ours is None:
        if entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise OutputFolderError(
                f"--out {path} is not empty ({shown}) and was not written by perception (no {MARKER}); "
                "choose a new or empty folder: nothing in it is deleted, --force or not"
            )
        return OutputFolder(path, [], written_by)
    earlier = [name for name in ours if (path / name).exists() or (path / name).is_symlink()]
    if earlier and not force:
        raise OutputFolderError(
            f"--out {path} holds the outputs of an earlier run ({', '.join(earlier)}); "
            "--force replaces them (only them), or choose another folder"
        )
    return OutputFolder(path, earlier, written_by)
