"""Top-down pose data from the simulator: person crops, keypoints in crop pixels, cached as .npz.

Each person is cropped exactly as the runtime does it (``preprocess.topdown_crops`` with the card's
aspect ratio 0.75, padding 1.25, pad value 0, linear interpolation) around its ground-truth *modal* box,
at every requested input size, so training, the comparison table and ``ModelRunner`` see identical crops.

Conventions: the simulator gives keypoints and boxes with pixel centres at integers (``sim/truth.py``);
the stack's continuous frame has pixel ``j`` spanning ``[j, j + 1)`` (``preprocess/affine.py``), so both
are shifted by +0.5 here, once. Keypoints with ``v = 0`` (outside the image / behind the camera) carry no
target; ``v = 1`` (occluded) and ``v = 2`` are both labelled, as in COCO.

Splits are separate scene seeds: training seeds ``[0, n)``, held-out seeds from ``HELDOUT_SEED0`` on
(never overlapping). Rendering costs ~0.15 s per frame, so each split is cached once under
``data/pose_cache/`` (ignored by git) keyed by every parameter that changes its content.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from perception_pkg.preprocess.geometry import topdown_crops

HELDOUT_SEED0 = 100_000  # held-out scene seeds start here; training seeds are 0 .. n - 1
ASPECT_RATIO = 0.75
PADDING = 1.25
CACHE_VERSION = 1


@dataclass(frozen=True)
class PoseDataSpec:
    """Everything that determines a split's content (and so its cache key)."""

    seeds: tuple[int, ...]
    frames_per_scene: int = 10
    frame_step: int = 4  # render every 4th frame: the same people, moved on by 0.4 s
    sizes: tuple[tuple[int, int], ...] = ((128, 96), (64, 48))  # crop (h, w) per input resolution
    min_height: float = 40.0  # modal box height in pixels
    min_keypoints: int = 8  # keypoints with v > 0
    people_per_100m: float = 45.0
    people_in_first_view: int = 12
    crossing_people_per_100m: float = 6.0
    version: int = field(default=CACHE_VERSION)

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def train_spec(num_scenes: int, **kw: object) -> PoseDataSpec:
    return PoseDataSpec(seeds=tuple(range(num_scenes)), **kw)  # type: ignore[arg-type]


def heldout_spec(num_scenes: int, **kw: object) -> PoseDataSpec:
    kw.setdefault("frame_step", 8)  # type: ignore[arg-type]
    kw.setdefault("frames_per_scene", 5)  # type: ignore[arg-type]
    return PoseDataSpec(seeds=tuple(range(HELDOUT_SEED0, HELDOUT_SEED0 + num_scenes)), **kw)  # type: ignore[arg-type]


@dataclass
class PoseSet:
    """One split. Per person ``i``: ``crops[(h, w)][i]`` RGB uint8 crop, ``kp_crop[(h, w)][i]`` (17, 2)
    keypoints in that crop's pixels, ``to_crop[(h, w)][i]`` (2, 3) image -> crop map; image-frame
    ``keypoints`` (17, 3) x, y, v (continuous frame), ``boxes`` (4,) xyxy, ``areas`` (visible pixels),
    ``frame_ids`` (a unique id per rendered frame), ``seeds``."""

    crops: dict[tuple[int, int], NDArray[np.uint8]]
    kp_crop: dict[tuple[int, int], NDArray[np.float32]]
    to_crop: dict[tuple[int, int], NDArray[np.float64]]
    keypoints: NDArray[np.float64]
    boxes: NDArray[np.float64]
    areas: NDArray[np.float64]
    frame_ids: NDArray[np.int64]
    seeds: NDArray[np.int64]
    render_seconds: float = 0.0

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def subset(self, rows: NDArray | slice) -> PoseSet:
        return PoseSet(
            {k: v[rows] for k, v in self.crops.items()},
            {k: v[rows] for k, v in self.kp_crop.items()},
            {k: v[rows] for k, v in self.to_crop.items()},
            self.keypoints[rows],
            self.boxes[rows],
            self.areas[rows],
            self.frame_ids[rows],
            self.seeds[rows],
            self.render_seconds,
        )


def default_cache_dir() -> Path:
    from perception_pkg.paths import repo_root

    root = repo_root()
    return (root / "data" / "pose_cache") if root is not None else Path.home() / ".cache" / "perception_pose"


def _scene_config(spec: PoseDataSpec):  # sim types stay out of the public signature
    from perception_pkg.sim import SceneConfig

    frames = (spec.frames_per_scene - 1) * spec.frame_step + 1
    return SceneConfig.with_sensors(
        frames=frames,
        people_per_100m=spec.people_per_100m,
        people_in_first_view=spec.people_in_first_view,
        crossing_people_per_100m=spec.crossing_people_per_100m,
    )


def persons_of_frame(objects: Sequence, spec: PoseDataSpec) -> list:
    """The people a split keeps: a modal box at least ``min_height`` tall and enough labelled keypoints."""
    keep = []
    for o in objects:
        if o.cls != "person" or o.box2d is None or o.keypoints is None:
            continue
        if o.box2d[3] - o.box2d[1] < spec.min_height:
            continue
        if int(np.count_nonzero(o.keypoints[:, 2] > 0)) < spec.min_keypoints:
            continue
        keep.append(o)
    return keep


def render_set(spec: PoseDataSpec, progress: bool = False) -> PoseSet:
    """Render every scene of the spec and crop its people (deterministic in the spec)."""
    from perception_pkg.sim import generate_scene, render_frame

    t0 = time.perf_counter()
    crops: dict[tuple[int, int], list[NDArray]] = {s: [] for s in spec.sizes}
    kpc: dict[tuple[int, int], list[NDArray]] = {s: [] for s in spec.sizes}
    maps: dict[tuple[int, int], list[NDArray]] = {s: [] for s in spec.sizes}
    kps, boxes, areas, fids, seeds = [], [], [], [], []
    cfg = _scene_config(spec)
    for si, seed in enumerate(spec.seeds):
        scene = generate_scene(seed, cfg)
        for fi in range(spec.frames_per_scene):
            frame = render_frame(scene, fi * spec.frame_step, shadows=True)
            people = persons_of_frame(frame.objects, spec)
            if not people:
                continue
            # sim pixel centres are integers; the stack's continuous frame puts them at j + 0.5
            box = np.stack([o.box2d for o in people]).astype(np.float64) + 0.5
            kp = np.stack([o.keypoints for o in people]).astype(np.float64)
            kp[..., :2] += 0.5
            for size in spec.sizes:
                c, t = topdown_crops(frame.image, box, size, ASPECT_RATIO, PADDING, 0.0, "linear")
                crops[size].append(c)
                maps[size].append(t.matrix)
                kpc[size].append(t.apply_points(kp[..., :2]).astype(np.float32))
            kps.append(kp)
            boxes.append(box)
            areas.append(np.array([o.visible_pixels for o in people], dtype=np.float64))
            fids.append(np.full(len(people), seed * 1000 + fi, dtype=np.int64))
            seeds.append(np.full(len(people), seed, dtype=np.int64))
        if progress:
            n = sum(len(a) for a in areas)
            dt = time.perf_counter() - t0
            print(f"  scene {si + 1}/{len(spec.seeds)} (seed {seed}): {n} people, {dt:.0f} s")
    return PoseSet(
        {s: np.concatenate(v) for s, v in crops.items()},
        {s: np.concatenate(v) for s, v in kpc.items()},
        {s: np.concatenate(v) for s, v in maps.items()},
        np.concatenate(kps),
        np.concatenate(boxes),
        np.concatenate(areas),
        np.concatenate(fids),
        np.concatenate(seeds),
        time.perf_counter() - t0,
    )


def _size_tag(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def save_set(path: Path, data: PoseSet) -> None:
    arrays: dict[str, NDArray] = {
        "keypoints": data.keypoints,
        "boxes": data.boxes,
        "areas": data.areas,
        "frame_ids": data.frame_ids,
        "seeds": data.seeds,
        "render_seconds": np.array(data.render_seconds),
    }
    for s in data.crops:
        tag = _size_tag(s)
        arrays[f"crops_{tag}"] = data.crops[s]
        arrays[f"kp_crop_{tag}"] = data.kp_crop[s]
        arrays[f"to_crop_{tag}"] = data.to_crop[s]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)  # uncompressed: loading is what reruns pay for, and crops barely compress
    tmp.replace(path)


def load_set(path: Path, sizes: Sequence[tuple[int, int]]) -> PoseSet:
    with np.load(path) as z:
        return PoseSet(
            {s: z[f"crops_{_size_tag(s)}"] for s in sizes},
            {s: z[f"kp_crop_{_size_tag(s)}"] for s in sizes},
            {s: z[f"to_crop_{_size_tag(s)}"] for s in sizes},
            z["keypoints"],
            z["boxes"],
            z["areas"],
            z["frame_ids"],
            z["seeds"],
            float(z["render_seconds"]),
        )


def concat_sets(parts: Sequence[PoseSet]) -> PoseSet:
    first = parts[0]
    return PoseSet(
        {s: np.concatenate([p.crops[s] for p in parts]) for s in first.crops},
        {s: np.concatenate([p.kp_crop[s] for p in parts]) for s in first.kp_crop},
        {s: np.concatenate([p.to_crop[s] for p in parts]) for s in first.to_crop},
        np.concatenate([p.keypoints for p in parts]),
        np.concatenate([p.boxes for p in parts]),
        np.concatenate([p.areas for p in parts]),
        np.concatenate([p.frame_ids for p in parts]),
        np.concatenate([p.seeds for p in parts]),
        sum(p.render_seconds for p in parts),
    )


def get_train_set(
    num_scenes: int,
    chunk: int = 100,
    cache_dir: Path | None = None,
    progress: bool = False,
    use_cache: bool = True,
    **kw: object,
) -> PoseSet:
    """Training seeds ``0 .. num_scenes - 1``, rendered and cached in chunks of ``chunk`` scenes, so growing
    the set only renders the new scenes."""
    parts = []
    for lo in range(0, num_scenes, chunk):
        spec = PoseDataSpec(seeds=tuple(range(lo, min(lo + chunk, num_scenes))), **kw)  # type: ignore[arg-type]
        parts.append(get_set(spec, cache_dir, progress, use_cache))
    return concat_sets(parts)


def get_set(
    spec: PoseDataSpec, cache_dir: Path | None = None, progress: bool = False, use_cache: bool = True
) -> PoseSet:
    """The split for ``spec``: from the cache when present, else rendered (and cached)."""
    cache_dir = cache_dir or default_cache_dir()
    path = cache_dir / f"pose_{spec.key()}.npz"
    if use_cache and path.is_file():
        return load_set(path, spec.sizes)
    data = render_set(spec, progress)
    if use_cache:
        # the folder ignores itself, so nothing rendered can be committed by accident
        cache_dir.mkdir(parents=True, exist_ok=True)
        ignore = cache_dir / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n")
        save_set(path, data)
        (cache_dir / f"pose_{spec.key()}.json").write_text(json.dumps(asdict(spec), indent=1))
    return data
