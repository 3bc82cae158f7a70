"""Where the package finds its data: config, models, interface definitions and test assets.

Two installs are supported: the repository checkout (pip ``-e`` in ``.venv``) and a colcon install on a
robot, where ``config/``, ``models/``, ``launch/`` live under ``share/perception_pkg``.
"""

from __future__ import annotations

import os
from pathlib import Path

_PKG_DIR = Path(__file__).resolve().parent


def _share_dir() -> Path | None:
    """share/perception_pkg of a colcon install, found through the ament index without importing it."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        candidate = Path(prefix) / "share" / "perception_pkg"
        if prefix and (candidate / "config").is_dir():
            return candidate
    return None


def data_root() -> Path:
    """The folder holding config/, models/ and launch/: the checkout if there is one, else the share dir."""
    repo = _PKG_DIR.parent
    if (repo / "config").is_dir() and (repo / "pyproject.toml").is_file():
        return repo
    share = _share_dir()
    if share is None:
        raise FileNotFoundError(
            "perception_pkg data (config/, models/) not found: neither a source checkout next to "
            f"{_PKG_DIR} nor share/perception_pkg on AMENT_PREFIX_PATH"
        )
    return share


def config_dir() -> Path:
    return data_root() / "config"


def models_dir() -> Path:
    return Path(os.environ.get("PERCEPTION_MODELS", data_root() / "models"))


def repo_root() -> Path | None:
    """The source checkout, or None when running from an installed package."""
    repo = _PKG_DIR.parent
    return repo if (repo / "pyproject.toml").is_file() else None


def assets_dir() -> Path | None:
    """Real sample data (COCO, KITTI, bags) kept beside the project, never inside it.

    ``PERCEPTION_ASSETS`` overrides the default ``<repo>/../shared/assets``. Returns None when absent,
    so tests can skip with a reason.
    """
    env = os.environ.get("PERCEPTION_ASSETS")
    if env:
        path = Path(env)
    else:
        repo = repo_root()
        if repo is None:
            return None
        path = repo.parent / "shared" / "assets"
    return path if path.is_dir() else None
