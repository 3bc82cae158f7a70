"""One scan: boxes -> the points inside each -> one batched completion -> points back in the scan's frame.

:func:`complete_scan` keeps the boxes of the wanted classes (score at least ``min_score``), the
``max_objects`` nearest to the sensor, cuts their points (``extract.points_in_boxes``), skips and
counts those with fewer than ``min_points``, normalises the rest into the PCN object frame, completes
them in one engine call, and maps every completion back with the exact inverse of its normalisation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from perception_pkg.completion.extract import points_in_boxes
from perception_pkg.completion.frame import Boxes


@dataclass(frozen=True)
class ScanParams:
    classes: tuple[str, ...] = ("car",)
    min_score: float = 0.0
    min_points: int = 10
    grow: float = 0.1
    ground_margin: float = 0.15
    max_objects: int = 32


@dataclass
class ScanCompletion:
    """``boxes``: the completed objects' boxes; ``points`` (K, P, 3) their completions in the scan's frame
    (float32); ``inputs[k]``: object k's extracted points (scan frame); ``object_ids`` (K,) uint32;
    ``counts``: how many boxes were kept, skipped and why."""

    boxes: Boxes
    points: NDArray[np.float32]
    inputs: list[NDArray[np.float64]]
    object_ids: NDArray[np.uint32]
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.boxes)


def object_ids(ids: list[str], rows: NDArray) -> NDArray[np.uint32]:
    """A box's ``id`` when it is a non-negative integer (the simulator's object id, the detection's row),
    else its row among the scan's boxes."""
    out = []
    for s, r in zip(ids, rows.tolist(), strict=True):
        out.append(int(s) if s.isdigit() and int(s) < 2**32 else int(r))
    return np.asarray(out, dtype=np.uint32)


def select_boxes(
    boxes: Boxes, scores: NDArray | None, p: ScanParams
) -> tuple[NDArray[np.intp], dict[str, int]]:
    """Rows of the boxes to complete, nearest first, and the counts of those left out."""
    n = len(boxes)
    wanted = np.array([lab in p.classes for lab in boxes.labels], dtype=bool)
    if scores is not None:
        sure = np.asarray(scores, dtype=np.float64) >= p.min_score
        sure |= np.isnan(np.asarray(scores, dtype=np.float64))  # a box without a score is not a weak one
    else:
        sure = np.ones(n, bool)
    sized = np.all(boxes.sizes > 0, axis=1)
    keep = np.flatnonzero(wanted & sure & sized)
    keep = keep[np.argsort(np.linalg.norm(boxes.centres[keep], axis=1), kind="stable")]
    over = max(0, len(keep) - p.max_objects)
    counts = {
        "skipped_class": int((~wanted).sum()),
        "skipped_score": int((wanted & ~sure).sum()),
        "skipped_degenerate": int((wanted & sure & ~sized).sum()),
        "skipped_max_objects": over,
    }
    return keep[: p.max_objects], counts


def complete_scan(
    xyz: NDArray, boxes: Boxes, completer, p: ScanParams, scores: NDArray | None = None
) -> ScanCompletion:
    """``xyz`` (N, 3) finite points and ``boxes`` in the same frame; ``completer`` a
    :class:`~perception_pkg.completion.completer.Completer` (anything with
    ``complete(list) -> (K, P, 3)``)."""
    t0 = time.perf_counter()
    rows, counts = select_boxes(boxes, scores, p)
    chosen = boxes.select(rows)
    ext = points_in_boxes(xyz, chosen, grow=p.grow, ground_margin=p.ground_margin)
    enough = ext.counts >= p.min_points
    counts["skipped_few_points"] = int((~enough).sum())
    counts["boxes"] = len(boxes)
    rows, chosen = rows[enough], chosen.select(np.flatnonzero(enough))
    inputs = [np.asarray(xyz[i], dtype=np.float64) for i, ok in zip(ext.indices, enough, strict=True) if ok]
    frames = chosen.frames()
    t1 = time.perf_counter()
    if len(chosen):
        local = [frames.to_object(pts, k) for k, pts in enumerate(inputs)]
        done = completer.complete(local)
        t2 = time.perf_counter()
        points = frames.to_sensor(done).astype(np.float32)
    else:
        t2 = t1
        points = np.zeros((0, 0, 3), np.float32)
    t3 = time.perf_counter()
    counts["completed"] = len(chosen)
    timings = {
        "extract": t1 - t0,
        **getattr(completer, "last_timings", {}),
        "complete": t2 - t1,
        "inverse": t3 - t2,
    }
    return ScanCompletion(chosen, points, inputs, object_ids(chosen.ids, rows), counts, timings)
