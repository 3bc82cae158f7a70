"""One pass over a sequence: render each frame once, degrade it, write bag, dataset and sheet."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from perception_pkg.sim.render import Frame, Renderer
from perception_pkg.sim.scene import Scene, SceneConfig, generate_scene
from perception_pkg.sim.weather import WEATHER_KINDS, degrade, derive_seed, ray_distance

log = logging.getLogger(__name__)

SAMPLE_SEED = 7
SAMPLE_FRAMES = 10
SAMPLE_WEATHER = ("fog", "rain", "night")


def degrade_frame(scene: Scene, frame: Frame, kind: str, severity: int) -> np.ndarray:
    """The frame's image degraded by ``kind`` at ``severity``, seeded by (scene seed, frame, kind, sev)."""
    distance = ray_distance(frame.depth, scene.rig.camera) if kind == "fog" else None
    return degrade(
        frame.image,
        kind,
        severity,
        distance=distance,
        seed=derive_seed(scene.seed, frame.index, kind, severity),
    )


@dataclass
class GenerateResult:
    frames: int
    bag: Path | None = None
    dataset: Path | None = None
    contact_sheet: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def generate(
    out: str | Path,
    seed: int,
    frames: int,
    *,
    config: SceneConfig | None = None,
    bag: bool = True,
    dataset: bool = True,
    weather: Sequence[str] = WEATHER_KINDS,
    severities: Sequence[int] = (3,),
    bag_severity: int = 3,
    contact_sheet: str | Path | None = None,
    sheet_frames: int = 3,
    progress: Callable[[int, int], None] | None = None,
    bag_custom_data: dict[str, str] | None = None,
    shadows: bool = True,
    objects: bool = True,
    frame_step: int = 1,
) -> GenerateResult:
    """Simulate ``frames`` frames of scene ``seed`` into ``out``/bag and ``out``/dataset.

    The bag carries every kind in ``weather`` at ``bag_severity``; the dataset every kind at every
    severity in ``severities``. ``objects=False`` skips the per-object completion files (most of the
    dataset time); ``frame_step`` renders every n-th time step, for frames that differ more (evaluation).
    Same arguments, same bytes.
    """
    from perception_pkg.sim.bag import SimBagWriter
    from perception_pkg.sim.dataset import DatasetWriter
    from perception_pkg.sim.sheet import write_contact_sheet

    out = Path(out)
    cfg = config or SceneConfig()
    if frame_step < 1:
        raise ValueError(f"frame_step must be >= 1, got {frame_step}")
    if cfg.frames != frames * frame_step:
        cfg = replace(cfg, frames=frames * frame_step)
    scene = generate_scene(seed, cfg)
    renderer = Renderer(scene)
    result = GenerateResult(frames=frames)
    seconds = {"render": 0.0, "degrade": 0.0, "bag": 0.0, "dataset": 0.0}
    custom = {"perception_pkg.sim": f"seed={seed} frames={frames}", **(bag_custom_data or {})}
    bag_writer = SimBagWriter(out / "bag", scene, weather, custom_data=custom) if bag else None
    ds_writer = (
        DatasetWriter(out / "dataset", scene, weather=weather, severities=severities, objects=objects)
        if dataset
        else None
    )
    sheet_idx = set(np.linspace(0, frames - 1, min(sheet_frames, frames)).round().astype(int).tolist())
    sheet: list[Frame] = []
    sheet_degraded: dict[str, np.ndarray] = {}
    if bag_writer is not None:
        bag_writer.__enter__()
    try:
        for i in range(frames):
            t0 = time.perf_counter()
            frame = renderer.render(i * frame_step, shadows=shadows)
            seconds["render"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            wanted = set()
            if bag_writer is not None:
                wanted |= {(k, bag_severity) for k in weather}
            if ds_writer is not None:
                wanted |= {(k, s) for k in weather for s in severities}
            if contact_sheet is not None and i == 0:
                wanted |= {(k, bag_severity) for k in weather}
            degraded = {key: degrade_frame(scene, frame, *key) for key in sorted(wanted)}
            seconds["degrade"] += time.perf_counter() - t0
            if bag_writer is not None:
                t0 = time.perf_counter()
                bag_writer.write(frame, {k: degraded[(k, bag_severity)] for k in weather})
                seconds["bag"] += time.perf_counter() - t0
            if ds_writer is not None:
                t0 = time.perf_counter()
                ds_writer.write(frame, renderer, degraded)
                seconds["dataset"] += time.perf_counter() - t0
            if contact_sheet is not None and i in sheet_idx:
                sheet.append(frame)
                if i == 0:
                    sheet_degraded = {"clean": frame.image}
                    sheet_degraded.update(
                        {f"{k} s{bag_severity}": degraded[(k, bag_severity)] for k in weather}
                    )
            if progress is not None:
                progress(i + 1, frames)
    finally:
        if bag_writer is not None:
            bag_writer.__exit__(None, None, None)
    if bag_writer is not None:
        result.bag = out / "bag"
    if ds_writer is not None:
        ds_writer.close()
        result.dataset = out / "dataset"
    if contact_sheet is not None:
        result.contact_sheet = write_contact_sheet(contact_sheet, sheet, scene, sheet_degraded or None)
    result.seconds = seconds
    return result


def default_sample_bag_path() -> Path:
    """data/sample/sim_sample_bag in a checkout, else a per-user cache folder."""
    from perception_pkg.paths import repo_root

    repo = repo_root()
    if repo is not None:
        return repo / "data" / "sample" / "sim_sample_bag"
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "perception_pkg" / "sim_sample_bag"


def source_key() -> str:
    """Hash of the simulator's source files: a cached sample made by other code is rebuilt."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _sample_is_current(path: Path, key: str) -> bool:
    meta = path / "metadata.yaml"
    return meta.is_file() and f"perception_pkg.sim.source: {key}" in meta.read_text()


def ensure_sample_bag(path: str | Path | None = None) -> Path:
    """The README demo's bag: 10 frames of seed 7 with fog, rain and night topics. Built on first use.

    About 55 MB, so it is generated (about 4 s here) rather than shipped. Rebuilt when the
    simulator's source changed since (its hash is in the bag's custom_data). Written to a temporary
    folder first and renamed, so an interrupted run never leaves a half bag behind.
    """
    path = Path(path) if path is not None else default_sample_bag_path()
    key = source_key()
    if _sample_is_current(path, key):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("generating the sample bag %s (seed %d, %d frames)", path, SAMPLE_SEED, SAMPLE_FRAMES)
    generate(
        tmp, SAMPLE_SEED, SAMPLE_FRAMES, bag=True, dataset=False, weather=SAMPLE_WEATHER,
        bag_custom_data={"perception_pkg.sim.source": key},
    )  # fmt: skip
    if path.exists():
        shutil.rmtree(path)
    (tmp / "bag").rename(path)
    shutil.rmtree(tmp, ignore_errors=True)
    return path
