"""Pose test helpers: a planted top-down model whose heatmaps put every keypoint at a known crop
position, and the image keypoints that position maps to for given boxes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from perception_pkg.preprocess import topdown_transform

K = 17
TD_HW = (256, 192)


def planted_topdown(directory: Path, batch: int | str = "batch", seed: int = 3) -> tuple[Path, np.ndarray]:
    """Export a TinyTopDown (256x192 input, stride-4 heatmaps) whose outputs are planted peaks.

    Returns the card path and the keypoints every crop decodes to, in crop-input pixels (17, 2): each
    channel peaks at one cell with a higher right neighbour, so argmax + quarter shift gives
    ``(cell + (0.25, 0) + 0.5) * 4``. Needs torch (tests importorskip it).
    """
    import torch

    from perception_pkg.training.formats import topdown_card, write_model
    from perception_pkg.training.models import Planted, TinyTopDown

    rng = np.random.default_rng(seed)
    h, w = TD_HW[0] // 4, TD_HW[1] // 4
    cells = np.stack([rng.integers(1, w - 2, K), rng.integers(1, h - 1, K)], axis=-1)
    hm = np.full((1, K, h, w), -4.0, dtype=np.float32)
    hm[0, np.arange(K), cells[:, 1], cells[:, 0]] = 0.9
    hm[0, np.arange(K), cells[:, 1], cells[:, 0] + 1] = 0.5
    module = Planted(TinyTopDown(num_keypoints=K, width=8), [torch.from_numpy(hm)])
    card = topdown_card("planted_pose", TD_HW, batch=batch)
    path = write_model(module, card, directory, dynamic_batch=isinstance(batch, str))
    return path, (cells + [0.25, 0.0] + 0.5) * 4.0


def expected_keypoints(boxes: np.ndarray, crop_xy: np.ndarray) -> np.ndarray:
    """Where crop-input keypoints land in the image for each box (stack coordinates)."""
    inv = topdown_transform(boxes, TD_HW).inverse()
    return inv.apply_points(np.broadcast_to(crop_xy, (len(boxes), K, 2)))


class CountingEngine:
    """Wraps an engine and records the batch size of every infer call."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.batches: list[int] = []
        self.input_specs = engine.input_specs
        self.output_specs = engine.output_specs

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.batches.append(next(iter(feeds.values())).shape[0])
        return self.engine.infer(feeds)

    def warmup(self, runs: int = 2) -> None:
        self.engine.warmup(runs)
