"""Shared by the detection node / replay / pipeline tests (no tests here): a small simulator bag, its
ground truth, a CenterNet whose outputs are planted with that ground truth (exact boxes through the whole
path), and a detector stand-in that returns known 3D boxes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from perception_pkg.decoders.types import Detections
from perception_pkg.detection import DetectionResult

CLASSES = ("person", "car")
SIM_HW = (240, 320)
NET_HW = (256, 320)  # letterboxed: 8 px bands top and bottom, so the inverse mapping is exercised
SCENE_SEED = 7


@dataclass
class SimBag:
    path: Path
    stamps: list[int]
    images: list[np.ndarray]  # RGB
    camera: Any  # CameraModel
    frame_id: str
    gt2d: list[tuple[np.ndarray, list[str]]]  # per frame: boxes (N, 4), labels
    gt3d: list[tuple[np.ndarray, list[str]]]  # per frame: KITTI boxes (N, 7), labels


def make_sim_bag(out: Path, frames: int = 2, hw: tuple[int, int] = SIM_HW) -> SimBag:
    """A few low-resolution simulator frames (no weather, no shadows: ~1 s a frame) and their truth."""
    pytest.importorskip("open3d", reason="the simulator needs open3d")
    from rosbags.highlevel import AnyReader

    from perception_pkg.bag import get_typestore
    from perception_pkg.msgs import (
        camera_info_to_model,
        detection2d_array_to_xyxy,
        detection3d_array_to_kitti,
        image_to_rgb,
    )
    from perception_pkg.sim import SceneConfig, generate

    cfg = SceneConfig.with_sensors(width=hw[1], height=hw[0], azimuth_steps=300, frames=frames)
    generate(out, SCENE_SEED, frames, config=cfg, dataset=False, weather=(), shadows=False)
    stamps, images, gt2d, gt3d = [], [], [], []
    camera = None
    with AnyReader([out / "bag"], default_typestore=get_typestore()) as reader:
        for conn, t, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == "/camera/image_raw":
                stamps.append(t)
                images.append(image_to_rgb(msg, copy=True))
            elif conn.topic == "/camera/camera_info":
                camera = camera_info_to_model(msg)
            elif conn.topic == "/ground_truth/detections_2d":
                boxes, _, labels = detection2d_array_to_xyxy(msg)
                gt2d.append((boxes, labels))
            elif conn.topic == "/ground_truth/detections_3d":
                boxes3d, _, labels, _ = detection3d_array_to_kitti(msg)
                gt3d.append((boxes3d, labels))
    assert camera is not None and len(stamps) == frames
    return SimBag(out / "bag", stamps, images, camera, camera.frame_id, gt2d, gt3d)


def plantable(boxes: np.ndarray, labels: list[str], min_side: float = 12.0) -> np.ndarray:
    """Rows a planted CenterNet can reproduce exactly: big enough, centres of one class at least two
    heatmap cells apart (a 3x3 max-pool would suppress the weaker of two neighbours)."""
    from perception_pkg.preprocess import letterbox_transform

    t, _, _ = letterbox_transform(SIM_HW, NET_HW, "center")
    net = t.apply_boxes(boxes)
    cells = np.floor((net[:, :2] + net[:, 2:]) / 2 / 4).astype(int)
    keep: list[int] = []
    sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    for i in np.argsort(-sides, kind="stable").tolist():
        if sides[i] < min_side:
            continue
        if all(labels[j] != labels[i] or np.abs(cells[j] - cells[i]).max() >= 2 for j in keep):
            keep.append(i)
    return np.array(sorted(keep), dtype=int)


def planted_centernet(directory: Path, boxes: np.ndarray, class_ids: np.ndarray, scores: np.ndarray) -> Path:
    """Export a TinyCenterNet whose heads output exactly ``boxes`` (source pixels of a SIM_HW image);
    returns the card path."""
    torch = pytest.importorskip("torch", reason="exporting the planted test model needs torch")
    from perception_pkg.preprocess import letterbox_transform
    from perception_pkg.training.formats import centernet_card, write_model
    from perception_pkg.training.models import Planted, TinyCenterNet

    h, w = NET_HW[0] // 4, NET_HW[1] // 4
    t, _, _ = letterbox_transform(SIM_HW, NET_HW, "center")
    net = t.apply_boxes(boxes)
    centre = (net[:, :2] + net[:, 2:]) / 2 / 4
    cell = np.floor(centre).astype(int)
    hm = np.full((1, len(CLASSES), h, w), -9.0, dtype=np.float32)
    wh = np.zeros((1, 2, h, w), dtype=np.float32)
    reg = np.zeros((1, 2, h, w), dtype=np.float32)
    for i, c in enumerate(class_ids.tolist()):
        x, y = cell[i]
        hm[0, c, y, x] = np.log(scores[i] / (1 - scores[i]))
        wh[0, :, y, x] = (net[i, 2:] - net[i, :2]) / 4
        reg[0, :, y, x] = centre[i] - cell[i]
    module = Planted(
        TinyCenterNet(num_classes=len(CLASSES), width=8, head_width=8),
        [torch.from_numpy(a) for a in (hm, wh, reg)],
    )
    return write_model(module, centernet_card("planted_sim", NET_HW, list(CLASSES)), directory)


@dataclass
class Planted2D:
    card: Path
    boxes: np.ndarray  # what the model returns (source pixels), best score first
    labels: list[str]
    scores: np.ndarray


def planted_for_frame(directory: Path, bag: SimBag, frame: int = 0) -> Planted2D:
    """A planted model that returns the plantable ground-truth boxes of ``frame``."""
    boxes, labels = bag.gt2d[frame]
    rows = plantable(boxes, labels)
    assert rows.size >= 2, "the test scene should show at least two clearly separated objects"
    scores = 0.95 - 0.02 * np.arange(rows.size)  # distinct: the decoder sorts by score
    ids = np.array([CLASSES.index(labels[r]) for r in rows])
    card = planted_centernet(directory, boxes[rows], ids, scores)
    return Planted2D(card, boxes[rows], [labels[r] for r in rows], scores)


class FixedDetector:
    """Detector stand-in (the RTM3D decoder is not in the tree yet): returns fixed 2D boxes, and fixed
    3D boxes when it is given a camera, as a Detector with 3D heads does."""

    def __init__(self, boxes: np.ndarray, labels: list[str], boxes3d: np.ndarray) -> None:
        self.dets = Detections(
            np.asarray(boxes, dtype=np.float64),
            np.linspace(0.9, 0.5, len(boxes)),
            np.array([CLASSES.index(x) for x in labels], dtype=np.int64),
        )
        self.boxes3d = np.asarray(boxes3d, dtype=np.float64)
        self.has_3d = True
        self.lift_3d = True
        self.card = SimpleNamespace(name="fixed")
        self.runner = SimpleNamespace(engine="fixed-stub")
        self.calls: list[bool] = []  # whether each call had a camera

    def __call__(self, image: np.ndarray, camera: Any = None) -> DetectionResult:
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
        self.calls.append(camera is not None)
        return DetectionResult(
            self.dets, CLASSES, self.boxes3d if camera is not None else None, timings={"inference": 0.0}
        )


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes, (len(a), len(b))."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)
