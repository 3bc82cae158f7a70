"""Whole-frame data for the recurrent bottom-up pose model (``pose_rnn_*``): simulator frames, the
frozen features of the shipped detector, and every person's keypoints, cached as .npz.

The paper runs its ConvLSTM on the frozen intermediate features of a pre-trained network (the
Associative-Embedding hourglass) and says the method does not depend on the backbone; here the frozen
network is the shipped detector (``models/sim_detector``, :class:`~.detector_net.SimDetector`) up to its
stride-4 fused features ``p4`` (32 channels, 72x96 for the 288x384 input). Caching ``p4`` once per frame
is what makes training fit one CPU thread: only the recurrent part learns.

Frames: 640x480 renders resized to 384x288 exactly as the runtime letterbox does it (scale 0.6, no pad,
linear interpolation). Half of the training scenes use a crowded configuration (more pedestrians, more
crossing people) so that overlaps are common. Keypoints follow the dataset writer: simulator pixel centres
are integers, the stack's continuous frame puts them at ``j + 0.5`` (shifted once here), then scaled by
0.6 into network-input pixels.

Targets (``TARGET_*``): people whose modal box is at least ``TARGET_MIN_HEIGHT`` px tall in the 640x480
image, with ``TARGET_MIN_VISIBLE`` visible pixels and ``TARGET_MIN_KEYPOINTS`` labelled keypoints; the
``MAX_TARGETS`` largest per frame (by visible pixels). Smaller people stay unlabelled: the network is not
asked to find them, and evaluation counts them as misses.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

NET_HW = (288, 384)
SCALE = NET_HW[1] / 640.0
FEATURE_STRIDE = 4
TARGET_MIN_HEIGHT = 24.0
TARGET_MIN_VISIBLE = 150
TARGET_MIN_KEYPOINTS = 6
MAX_TARGETS = 12
CACHE_VERSION = 1
CROWDED = {"people_per_100m": 45.0, "people_in_first_view": 12, "crossing_people_per_100m": 6.0}


@dataclass(frozen=True)
class RnnDataSpec:
    """What fixes a split's content (and its cache key)."""

    seeds: tuple[int, ...]
    frames_per_scene: int = 5
    frame_step: int = 4
    crowded_every: int = 2  # every n-th scene uses the CROWDED configuration (0: none)
    version: int = CACHE_VERSION

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class RnnSet:
    """``features`` (N, 32, 72, 96) float16 frozen p4; per frame ``people`` (N, MAX_TARGETS, 17, 3)
    network-input keypoints (x, y, v), ``count`` (N,) targets per frame (rows beyond are zero),
    ``seeds`` (N,) the scene of each frame."""

    features: NDArray[np.float16]
    people: NDArray[np.float32]
    count: NDArray[np.int64]
    seeds: NDArray[np.int64]
    render_seconds: float = 0.0

    def __len__(self) -> int:
        return int(self.count.shape[0])


def frozen_backbone(weights: Path | None = None):  # torch stays out of the module's import
    """The shipped detector's layers up to ``p4`` in eval mode, gradients off."""
    import torch

    from perception_pkg.paths import models_dir
    from perception_pkg.training.detector_net import SimDetector

    det = SimDetector()
    path = weights or models_dir() / "sim_detector" / "model.pt"
    det.load_state_dict(torch.load(path, map_location="cpu"))
    det.eval()
    for p in det.parameters():
        p.requires_grad_(False)
    return det


def backbone_p4(det, x):
    """``p4`` of :class:`SimDetector` (the same fusion as its ``forward``, heads left out)."""
    from torch import nn

    f4 = det.s4(det.stem(x))
    f8 = det.s8(f4)
    f16 = det.s16(f8)
    p8 = det.fuse8(f8 + nn.functional.interpolate(det.lat8(f16), scale_factor=2.0, mode="nearest"))
    return det.fuse4(f4 + nn.functional.interpolate(det.lat4(p8), scale_factor=2.0, mode="nearest"))


def to_network_input(image_rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """640x480 RGB -> 384x288, as the card's letterbox does it (exact 0.6 scale, no padding)."""
    if image_rgb.shape[:2] != (480, 640):
        raise ValueError(f"expected a 480x640 render, got {image_rgb.shape}")
    return cv2.resize(image_rgb, (NET_HW[1], NET_HW[0]), interpolation=cv2.INTER_LINEAR)


def frame_targets(objects: Sequence) -> NDArray[np.float32]:
    """(MAX_TARGETS, 17, 3) network-input keypoints of a frame's target people, largest first; the
    number of real rows is the count of people passing the target rule."""
    rows = []
    for o in objects:
        if o.cls != "person" or o.box2d is None or o.keypoints is None:
            continue
        if o.box2d[3] - o.box2d[1] < TARGET_MIN_HEIGHT or o.visible_pixels < TARGET_MIN_VISIBLE:
            continue
        kp = np.asarray(o.keypoints, dtype=np.float64).copy()
        if int(np.count_nonzero(kp[:, 2] > 0)) < TARGET_MIN_KEYPOINTS:
            continue
        kp[:, :2] = (kp[:, :2] + 0.5) * SCALE
        kp[kp[:, 2] == 0, :2] = 0.0
        rows.append((o.visible_pixels, kp))
    rows.sort(key=lambda r: -r[0])
    out = np.zeros((MAX_TARGETS, 17, 3), np.float32)
    for i, (_, kp) in enumerate(rows[:MAX_TARGETS]):
        out[i] = kp
    return out


def render_split(spec: RnnDataSpec, progress: bool = False, batch: int = 8) -> RnnSet:
    """Render every scene of ``spec`` and run the frozen backbone (deterministic in the spec)."""
    import torch

    from perception_pkg.sim import SceneConfig, generate_scene, render_frame

    torch.set_num_threads(1)
    det = frozen_backbone()
    t0 = time.perf_counter()
    feats, people, counts, seeds, pending = [], [], [], [], []

    def flush() -> None:
        x = torch.from_numpy(np.stack(pending)).permute(0, 3, 1, 2).float() / 255.0
        with torch.no_grad():
            feats.append(backbone_p4(det, x).to(torch.float16).numpy())
        pending.clear()

    frames = (spec.frames_per_scene - 1) * spec.frame_step + 1
    for si, seed in enumerate(spec.seeds):
        crowded = spec.crowded_every > 0 and si % spec.crowded_every == 1
        cfg = SceneConfig.with_sensors(frames=frames, **(CROWDED if crowded else {}))
        scene = generate_scene(seed, cfg)
        for fi in range(spec.frames_per_scene):
            frame = render_frame(scene, fi * spec.frame_step, shadows=True)
            tgt = frame_targets(frame.objects)
            people.append(tgt)
            counts.append(int(np.count_nonzero(tgt[:, :, 2].max(axis=1) > 0)))
            seeds.append(seed)
            pending.append(to_network_input(frame.image))
            if len(pending) == batch:
                flush()
        if progress and (si + 1) % 10 == 0:
            print(
                f"  scene {si + 1}/{len(spec.seeds)}: {len(counts)} frames, {time.perf_counter() - t0:.0f} s"
            )
    if pending:
        flush()
    return RnnSet(
        np.concatenate(feats),
        np.stack(people),
        np.asarray(counts, np.int64),
        np.asarray(seeds, np.int64),
        time.perf_counter() - t0,
    )


def default_cache_dir() -> Path:
    from perception_pkg.paths import repo_root

    root = repo_root()
    return (root / "data" / "pose_rnn_cache") if root is not None else Path.home() / ".cache" / "pose_rnn"


def get_split(spec: RnnDataSpec, cache_dir: Path | None = None, progress: bool = False) -> RnnSet:
    """The split for ``spec``: from the cache when present, else rendered and cached."""
    cache_dir = cache_dir or default_cache_dir()
    path = cache_dir / f"rnn_{spec.key()}.npz"
    if path.is_file():
        with np.load(path) as z:
            return RnnSet(z["features"], z["people"], z["count"], z["seeds"], float(z["render_seconds"]))
    data = render_split(spec, progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    ignore = cache_dir / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")  # the cache ignores itself: nothing rendered is committed by accident
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        features=data.features,
        people=data.people,
        count=data.count,
        seeds=data.seeds,
        render_seconds=np.array(data.render_seconds),
    )
    tmp.replace(path)
    (cache_dir / f"rnn_{spec.key()}.json").write_text(json.dumps(asdict(spec), indent=1))
    return data


def get_train_split(num_scenes: int, chunk: int = 40, progress: bool = False, **kw: object) -> RnnSet:
    """Training seeds ``0 .. num_scenes - 1`` in cached chunks (growing the set renders only new ones)."""
    parts = [
        get_split(RnnDataSpec(seeds=tuple(range(lo, min(lo + chunk, num_scenes))), **kw), progress=progress)  # type: ignore[arg-type]
        for lo in range(0, num_scenes, chunk)
    ]
    return RnnSet(
        np.concatenate([p.features for p in parts]),
        np.concatenate([p.people for p in parts]),
        np.concatenate([p.count for p in parts]),
        np.concatenate([p.seeds for p in parts]),
        sum(p.render_seconds for p in parts),
    )


# --- the held-out crowded set ---------------------------------------------------------------------------

CROWDED_SEED0 = 300_000  # never a training seed (0 .. n) nor the other held-out ranges (100000, 1000000+)


def box_iou_matrix(xywh: NDArray) -> NDArray[np.float64]:
    """(N, N) IoU of COCO [x, y, w, h] boxes (vectorised)."""
    b = np.asarray(xywh, np.float64).reshape(-1, 4)
    x0, y0 = b[:, 0], b[:, 1]
    x1, y1 = x0 + b[:, 2], y0 + b[:, 3]
    iw = np.clip(np.minimum(x1[:, None], x1[None]) - np.maximum(x0[:, None], x0[None]), 0, None)
    ih = np.clip(np.minimum(y1[:, None], y1[None]) - np.maximum(y0[:, None], y0[None]), 0, None)
    inter = iw * ih
    area = b[:, 2] * b[:, 3]
    return inter / np.maximum(area[:, None] + area[None] - inter, 1e-9)


def crowded_images(annotations: Sequence[dict], min_iou: float = 0.3) -> set[int]:
    """Image ids with at least one pair of annotated people whose boxes overlap by IoU >= ``min_iou``."""
    by_image: dict[int, list[list[float]]] = {}
    for a in annotations:
        by_image.setdefault(int(a["image_id"]), []).append(a["bbox"])
    out = set()
    for img, boxes in by_image.items():
        if len(boxes) > 1:
            iou = box_iou_matrix(np.asarray(boxes))
            np.fill_diagonal(iou, 0.0)
            if iou.max() >= min_iou:
                out.add(img)
    return out


def write_crowded_set(
    out: Path, scenes: int = 12, frames: int = 10, frame_step: int = 4, min_iou: float = 0.3
) -> dict[str, int]:
    """Render ``scenes`` crowded held-out scenes (seeds from CROWDED_SEED0, the CROWDED configuration) and
    keep the frames where two annotated people overlap by IoU >= ``min_iou``, as one dataset folder in the
    ``perception sim`` layout (``annotations/keypoints.json`` + ``images/clean``) that ``perception eval
    pose`` reads. Every annotated person of a kept frame is scored, not only the overlapping ones."""
    import shutil
    import tempfile

    from perception_pkg.sim import SceneConfig
    from perception_pkg.sim.generate import generate

    out = Path(out)
    (out / "images" / "clean").mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    merged: dict = {"images": [], "annotations": [], "categories": None}
    for s in range(scenes):
        seed = CROWDED_SEED0 + s
        with tempfile.TemporaryDirectory() as tmp:
            cfg = SceneConfig.with_sensors(frames=(frames - 1) * frame_step + 1, **CROWDED)
            generate(
                tmp, seed, frames, config=cfg, bag=False, weather=(), objects=False, frame_step=frame_step
            )
            kp = json.loads((Path(tmp) / "dataset" / "annotations" / "keypoints.json").read_text())
            merged["categories"] = kp["categories"]
            keep = crowded_images(kp["annotations"], min_iou)
            new_id = {}
            for img in kp["images"]:
                if img["id"] not in keep:
                    continue
                new_id[img["id"]] = len(merged["images"]) + 1
                name = f"{seed}_{Path(img['file_name']).name}"
                shutil.copy(Path(tmp) / "dataset" / img["file_name"], out / "images" / "clean" / name)
                merged["images"].append({**img, "id": new_id[img["id"]], "file_name": f"images/clean/{name}"})
            for a in kp["annotations"]:
                if a["image_id"] in new_id:
                    merged["annotations"].append(
                        {**a, "id": len(merged["annotations"]) + 1, "image_id": new_id[a["image_id"]]}
                    )
    (out / "annotations" / "keypoints.json").write_text(json.dumps(merged))
    return {"images": len(merged["images"]), "people": len(merged["annotations"])}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="held-out crowded pose set (people overlapping by IoU >= 0.3)")
    ap.add_argument("out", type=Path)
    ap.add_argument("--scenes", type=int, default=12)
    ap.add_argument("--frames", type=int, default=10)
    a = ap.parse_args()
    print(write_crowded_set(a.out, a.scenes, a.frames))
