"""Paired training data for the weather restorer: clean simulator frames, degraded on the fly.

Rendering needs the simulator (open3d); degrading does not. So the two are split:

- :func:`render_clean` renders seeded scenes once into one compact cache file (lossless WebP bytes of each
  640x480 clean frame and 16-bit PNG bytes of its per-pixel ray distance in decimetres, which the depth
  fog needs). The
  same seeds give the same file; a second run loads it.
- :class:`PairDataset` decodes that cache and, for item ``i``, degrades one frame with one condition at
  one severity (``perception_pkg.sim.weather.degrade``, the simulator's own degradations, seeded by
  ``(seed, i)``) and cuts ``crops`` pixel-aligned (degraded, clean) crops from it at full resolution, so
  the network learns rain streaks and snow flakes at the scale it meets them at inference.

Conditions: ``clear`` (input = target: the restorer must leave a clear frame alone), ``fog``, ``rain``,
``snow``, ``night`` (severities 1-5, uniform). Training machines without open3d (an accelerator lent
for minutes) can still import the degradations: :func:`import_degrade` loads ``sim/weather.py`` without
the simulator package's renderer.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import sys
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from perception_pkg.weather.conditions import CONDITIONS

log = logging.getLogger(__name__)

DEGRADED = tuple(c for c in CONDITIONS if c != "clear")
DISTANCE_SCALE = 10.0  # cache stores ray distance in decimetres (uint16; 0 = sky / beyond 6.5 km)


@dataclass(frozen=True)
class CleanSpec:
    """Which frames to render: ``frames_per_scene`` frames ``step`` time steps apart per scene seed."""

    seeds: tuple[int, ...]
    frames_per_scene: int = 4
    step: int = 8

    def key(self) -> str:
        s = self.seeds
        return f"weather_s{s[0]}-{s[-1]}n{len(s)}_f{self.frames_per_scene}x{self.step}_v2"


def _render_scene(args: tuple[int, int, int]) -> list[tuple[bytes, bytes]]:
    seed, count, step = args
    cv2.setNumThreads(1)
    from perception_pkg.sim import Renderer, SceneConfig, generate_scene, ray_distance

    config = SceneConfig.with_sensors(azimuth_steps=200, frames=count * step)  # LiDAR unused: few beams
    scene = generate_scene(seed=seed, config=config)
    renderer = Renderer(scene)
    out = []
    for i in range(count):
        f = renderer.render(i * step, shadows=True)
        d = ray_distance(f.depth, scene.rig.camera)
        dm = np.where(np.isfinite(d), np.clip(d * DISTANCE_SCALE + 0.5, 1, 65535), 0).astype(np.uint16)
        # lossless WebP (about 30% smaller than PNG here) and 16-bit PNG: the cache travels to lent machines
        ok1, rgb_png = cv2.imencode(
            ".webp", np.ascontiguousarray(f.image[..., ::-1]), [cv2.IMWRITE_WEBP_QUALITY, 101]
        )
        ok2, d_png = cv2.imencode(".png", dm, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not (ok1 and ok2):
            raise RuntimeError(f"PNG encoding failed for scene {seed} frame {i}")
        out.append((rgb_png.tobytes(), d_png.tobytes()))
    return out


def _pack(blobs: Sequence[bytes]) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    offsets = np.cumsum([0, *[len(b) for b in blobs]]).astype(np.int64)
    return np.frombuffer(b"".join(blobs), np.uint8).copy(), offsets


def render_clean(spec: CleanSpec, cache_dir: str | Path, workers: int = 2) -> Path:
    """The cache file of ``spec`` (rendered now if absent): ``rgb``/``distance`` PNG bytes + offsets."""
    path = Path(cache_dir) / f"{spec.key()}.npz"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    jobs = [(s, spec.frames_per_scene, spec.step) for s in spec.seeds]
    if workers > 1:
        with mp.get_context("spawn").Pool(workers) as pool:
            scenes = pool.map(_render_scene, jobs, chunksize=1)
    else:
        scenes = [_render_scene(j) for j in jobs]
    frames = [f for s in scenes for f in s]
    rgb, rgb_off = _pack([f[0] for f in frames])
    dist, dist_off = _pack([f[1] for f in frames])
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        rgb=rgb,
        rgb_offsets=rgb_off,
        distance=dist,
        distance_offsets=dist_off,
        seeds=np.array(spec.seeds),
        frames_per_scene=spec.frames_per_scene,
        step=spec.step,
    )
    tmp.rename(path)
    log.info(
        "rendered %d clean frames in %.0f s -> %s (%.1f MB)",
        len(frames),
        time.perf_counter() - t0,
        path,
        path.stat().st_size / 1e6,
    )
    return path


@dataclass
class CleanFrames:
    """Decoded cache: RGB uint8 frames and their ray distances (float32 m, inf for sky)."""

    rgb: list[NDArray[np.uint8]]
    distance: list[NDArray[np.float32]]

    def __len__(self) -> int:
        return len(self.rgb)


def load_clean(path: str | Path, limit: int | None = None) -> CleanFrames:
    with np.load(path) as z:
        rgb, ro, dist, do = z["rgb"], z["rgb_offsets"], z["distance"], z["distance_offsets"]
    n = len(ro) - 1 if limit is None else min(limit, len(ro) - 1)
    images, distances = [], []
    for i in range(n):
        bgr = cv2.imdecode(rgb[ro[i] : ro[i + 1]], cv2.IMREAD_COLOR)
        dm = cv2.imdecode(dist[do[i] : do[i + 1]], cv2.IMREAD_UNCHANGED).astype(np.float32)
        images.append(np.ascontiguousarray(bgr[..., ::-1]))
        distances.append(np.where(dm > 0, dm / DISTANCE_SCALE, np.inf).astype(np.float32))
    return CleanFrames(images, distances)


def import_degrade() -> Callable[..., NDArray[np.uint8]]:
    """``perception_pkg.sim.weather.degrade``, importable where the simulator's renderer is not.

    ``perception_pkg.sim``'s ``__init__`` imports the renderer (open3d) and the bag writer (rosbags);
    the degradations need neither. Where that import fails, a bare package object stands in for
    ``perception_pkg.sim`` so that ``sim/weather.py`` (numpy, OpenCV, imagecorruptions) loads alone.
    """
    try:
        return importlib.import_module("perception_pkg.sim.weather").degrade
    except ImportError:
        sys.modules.pop("perception_pkg.sim", None)
        import perception_pkg

        bare = types.ModuleType("perception_pkg.sim")
        bare.__path__ = [str(Path(perception_pkg.__file__).parent / "sim")]
        sys.modules["perception_pkg.sim"] = bare
        return importlib.import_module("perception_pkg.sim.weather").degrade


@dataclass(frozen=True)
class PairConfig:
    crop_hw: tuple[int, int] = (120, 160)
    crops: int = 4  # crops per degraded frame (one degradation serves several crops)
    conditions: tuple[str, ...] = CONDITIONS
    weights: tuple[float, ...] | None = None  # sampling weight per condition (None: uniform)
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    thumb_hw: tuple[int, int] = (120, 160)  # the whole degraded frame at this size, for the classifier
    seed: int = 0


class PairDataset:
    """Item ``i`` -> dict of uint8 arrays ``degraded``/``clean`` (crops, H, W, 3) RGB, int arrays
    ``condition`` (index into CONDITIONS) and ``severity`` (0 for clear) per crop, and the whole degraded
    frame resized to ``thumb_hw`` (``thumb``, 1 x h x w x 3, with ``thumb_condition``): what the condition
    classifier sees at inference. The same ``i``, the same bytes.

    A map-style dataset of ``length`` items (a torch DataLoader takes it as it is)."""

    def __init__(self, frames: CleanFrames, config: PairConfig, length: int) -> None:
        self.frames = frames
        self.cfg = config
        self.length = length
        w = np.ones(len(config.conditions)) if config.weights is None else np.asarray(config.weights, float)
        self.p = w / w.sum()
        self._degrade: Callable[..., NDArray[np.uint8]] | None = None

    def __len__(self) -> int:
        return self.length

    def sample(self, i: int) -> tuple[int, str, int, int]:
        """(frame, condition, severity, degradation seed) of item ``i``."""
        rng = np.random.default_rng([self.cfg.seed, i])
        frame = int(rng.integers(len(self.frames)))
        cond = str(self.cfg.conditions[int(rng.choice(len(self.p), p=self.p))])
        sev = 0 if cond == "clear" else int(rng.choice(self.cfg.severities))
        return frame, cond, sev, int(rng.integers(2**31))

    def __getitem__(self, i: int) -> dict[str, NDArray]:
        if self._degrade is None:
            cv2.setNumThreads(1)
            self._degrade = import_degrade()
        frame, cond, sev, dseed = self.sample(i)
        clean = self.frames.rgb[frame]
        if cond == "clear":
            degraded = clean
        else:
            dist = self.frames.distance[frame] if cond == "fog" else None
            degraded = self._degrade(clean, cond, sev, distance=dist, seed=dseed)
        rng = np.random.default_rng([self.cfg.seed, i, 1])
        ch, cw = self.cfg.crop_hw
        h, w = clean.shape[:2]
        ys = rng.integers(0, h - ch + 1, self.cfg.crops)
        xs = rng.integers(0, w - cw + 1, self.cfg.crops)
        flips = rng.random(self.cfg.crops) < 0.5
        d_out = np.empty((self.cfg.crops, ch, cw, 3), np.uint8)
        c_out = np.empty_like(d_out)
        for k, (y, x, flip) in enumerate(zip(ys, xs, flips, strict=True)):
            sl = (
                slice(y, y + ch),
                slice(x, x + cw) if not flip else slice(x + cw - 1, x - 1 if x else None, -1),
            )
            d_out[k] = degraded[sl]
            c_out[k] = clean[sl]
        n = self.cfg.crops
        th, tw = self.cfg.thumb_hw
        thumb = cv2.resize(degraded, (tw, th), interpolation=cv2.INTER_AREA)
        return {
            "degraded": d_out,
            "clean": c_out,
            "condition": np.full(n, CONDITIONS.index(cond), np.int64),
            "severity": np.full(n, sev, np.int64),
            "thumb": thumb[None],
            "thumb_condition": np.array([CONDITIONS.index(cond)], np.int64),
        }


def collate(items: Sequence[dict[str, NDArray]]) -> dict[str, NDArray]:
    """Items of several crops each -> one batch (crops of all items concatenated)."""
    return {k: np.concatenate([it[k] for it in items]) for k in items[0]}
