"""Partial/complete object pairs from the simulator, for training and evaluating completion.

``ensure_split`` renders one ``perception sim`` dataset per scene seed (no weather, no shadows: only
the LiDAR and the object files matter) under a cache folder; ``build_pairs`` turns every object of the
wanted classes into a pair in the PCN object frame of its ground-truth LiDAR box:

- ``partial``: the scan's points inside the box, cut with the *same* function and parameters as the
  completion node (``completion.extract.points_in_boxes`` with ``CompletionSettings``' box_grow and
  ground_margin), so the network trains on what it will see; objects with fewer than ``min_points``
  are left out (and counted), as the node skips them;
- ``inputs``: the partial resampled to 1,024 (seeded; ``completion.sampling.resample``);
- ``gt``: the object's 2,048 outer-surface samples; ``gt_alt``: 2,048 of its independent 16,384
  samples (two samplings of the same shape: the oracle floor).

Pairs are cached as one npz per split (keyed by the seeds and the extraction parameters).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception_pkg.completion.extract import points_in_boxes
from perception_pkg.completion.frame import Boxes
from perception_pkg.completion.sampling import resample, subsample

log = logging.getLogger(__name__)


def parse_seeds(text: str) -> list[int]:
    """'1000-1009,1020' -> [1000, ..., 1009, 1020]."""
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-")
            out += list(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return out


def ensure_split(root: Path, seeds: Sequence[int], frames: int, frame_step: int) -> list[Path]:
    """The dataset folder of every seed, rendered when missing (about 0.7 s per frame here)."""
    from perception_pkg.sim import generate

    dirs = []
    for seed in seeds:
        out = Path(root) / f"seed{seed:05d}_f{frames}x{frame_step}"
        ds = out / "dataset"
        if not (ds / "dataset.json").is_file():
            log.info("rendering scene %d (%d frames, step %d) into %s", seed, frames, frame_step, out)
            generate(
                out, seed, frames, bag=False, dataset=True, weather=(), shadows=False, objects=True,
                frame_step=frame_step,
            )  # fmt: skip
        dirs.append(ds)
    return dirs


@dataclass
class Pairs:
    """Arrays over K objects (see module docstring); ``partial`` is ragged: rows
    ``partial_points[partial_offsets[k]:partial_offsets[k + 1]]``."""

    inputs: np.ndarray  # (K, 1024, 3) float32
    gt: np.ndarray  # (K, 2048, 3) float32
    gt_alt: np.ndarray  # (K, 2048, 3) float32
    partial_points: np.ndarray  # (sum n_k, 3) float32
    partial_offsets: np.ndarray  # (K + 1,) int64
    n_points: np.ndarray  # (K,) int64
    boxes: np.ndarray  # (K, 7) x, y, z, l, w, h, yaw (LiDAR frame)
    object_id: np.ndarray  # (K,) int64
    frame: np.ndarray  # (K,) int64
    scene: np.ndarray  # (K,) int64 (the seed)
    cls: np.ndarray  # (K,) str
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.inputs)

    def partial(self, k: int) -> np.ndarray:
        return self.partial_points[self.partial_offsets[k] : self.partial_offsets[k + 1]]

    def save(self, path: Path) -> None:
        np.savez(path, **{k: v for k, v in self.__dict__.items()})

    @classmethod
    def load(cls, path: Path) -> Pairs:
        with np.load(path) as f:
            d = {k: f[k] for k in f.files}
        d["skipped"] = int(d["skipped"])
        return cls(**d)


def _cache_key(dirs: Sequence[Path], classes, n_in, grow, ground_margin, min_points) -> str:
    text = json.dumps([[str(d) for d in dirs], list(classes), n_in, grow, ground_margin, min_points, 2])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def build_pairs(
    dirs: Sequence[Path],
    *,
    classes: Sequence[str] = ("car",),
    n_in: int = 1024,
    grow: float,
    ground_margin: float,
    min_points: int,
    seed: int = 0,
    cache: Path | None = None,
) -> Pairs:
    """Pairs of every object of ``classes`` in the datasets ``dirs`` (module docstring)."""
    if cache is not None:
        path = Path(cache) / f"pairs_{_cache_key(dirs, classes, n_in, grow, ground_margin, min_points)}.npz"
        if path.is_file():
            return Pairs.load(path)
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = defaultdict(list)
    partials: list[np.ndarray] = []
    skipped = 0
    for ds in dirs:
        manifest = json.loads((Path(ds) / "dataset.json").read_text())
        scene = int(manifest["seed"])
        by_frame: dict[str, list[str]] = defaultdict(list)
        for rel in manifest["object_files"]:
            by_frame[Path(rel).stem.split("_")[0]].append(rel)
        for frame_name, rels in sorted(by_frame.items()):
            with np.load(Path(ds) / "lidar" / f"{frame_name}.npz") as f:
                xyz = f["points"][:, :3].astype(np.float64)
            for rel in rels:
                with np.load(Path(ds) / rel) as f:
                    obj = {k: f[k] for k in f.files}
                if str(obj["cls"]) not in classes:
                    continue
                b = obj["box_lidar"].astype(np.float64)
                boxes = Boxes.from_yaw(b[None, :3], b[None, 3:6], b[None, 6:7])
                idx = points_in_boxes(xyz, boxes, grow=grow, ground_margin=ground_margin).indices[0]
                if len(idx) < min_points:
                    skipped += 1
                    continue
                frames = boxes.frames()
                with np.load(Path(ds) / "shapes" / f"{obj['shape']}.npz") as s:
                    c2048, c16384 = s["complete_2048"], s["complete_16384"]
                t = obj["T_lidar_object"].astype(np.float64)

                def norm(p: np.ndarray, frames=frames, t=t) -> np.ndarray:
                    return frames.to_object(p @ t[:3, :3].T + t[:3, 3], 0).astype(np.float32)

                part = frames.to_object(xyz[idx], 0).astype(np.float32)
                partials.append(part)
                cols["inputs"].append(resample(part, n_in, rng))
                cols["gt"].append(norm(c2048))
                cols["gt_alt"].append(norm(subsample(c16384, 2048, rng)))
                cols["n_points"].append(len(idx))
                cols["boxes"].append(b.astype(np.float32))
                cols["object_id"].append(int(obj["object_id"]))
                cols["frame"].append(int(obj["frame_index"]))
                cols["scene"].append(scene)
                cols["cls"].append(str(obj["cls"]))
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in partials])]).astype(np.int64)
    pairs = Pairs(
        inputs=np.stack(cols["inputs"]).astype(np.float32),
        gt=np.stack(cols["gt"]).astype(np.float32),
        gt_alt=np.stack(cols["gt_alt"]).astype(np.float32),
        partial_points=np.concatenate(partials).astype(np.float32),
        partial_offsets=offsets,
        n_points=np.asarray(cols["n_points"], dtype=np.int64),
        boxes=np.stack(cols["boxes"]).astype(np.float32),
        object_id=np.asarray(cols["object_id"], dtype=np.int64),
        frame=np.asarray(cols["frame"], dtype=np.int64),
        scene=np.asarray(cols["scene"], dtype=np.int64),
        cls=np.asarray(cols["cls"]),
        skipped=skipped,
    )
    if cache is not None:
        Path(cache).mkdir(parents=True, exist_ok=True)
        pairs.save(path)
    return pairs
