"""RTM3D heads on a CenterNet detector (rtm3d.txt Sect. 3.1-3.2; SPECS "Detection").

Reads, at stride s, the 2D heads of :mod:`.centernet` plus
``vertex_heatmap`` (B, 9, h, w) logits of the 8 corners + 3D centre (geometry3d.box3d order),
``vertex_offsets`` (B, 18, h, w) centre cell -> vertex (x, y) in output cells, optional
``vertex_subpixel`` (B, 2, h, w) sub-cell position of a vertex peak, ``dimensions`` (B, 3, h, w)
log(D / class mean) for D = (h, w, l), ``orientation`` (B, 8, h, w) Multi-Bin observation angle, and optional
``depth`` (B, 1, h, w) log metres.

Grouping (RTM3D): each centre's regressed vertices pick, per vertex type, the nearest vertex-heatmap peak
above ``vertex_threshold`` when it lies within ``snap_radius`` x the box's longer side; the snapped
position is the more precise one (a local peak with sub-cell offset), the regressed one survives where no
peak is near (occluded or off-image vertices). Confidence per vertex = the heatmap score at its position,
which weights the solver's reprojection term.

Returns :class:`Detections` with ``keypoints`` (N, 9, 3) in input pixels and ``extras`` dimensions (m),
dimension_std (m), alpha (rad), depth (m); classes outside ``classes_3d`` get NaN 3D extras.
The 3D solve itself needs the camera and happens in :mod:`perception_pkg.geometry3d.lift`.
``depth_prior_rel_std`` (ours, default off) also makes the depth head a soft prior in that solve.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.base import sigmoid
from perception_pkg.decoders.detection.centernet import CenterNetDecoder, heatmap_peaks, logit
from perception_pkg.decoders.types import Detections
from perception_pkg.geometry3d.multibin import decode_multibin

MIN_VERTEX_CONFIDENCE = 0.05  # a regressed, unconfirmed vertex still counts a little in the solve
_VERTEX_TYPES = np.arange(9)[None, :]


class Rtm3dDecoder(CenterNetDecoder):
    roles = ("heatmap", "size", "vertex_heatmap", "vertex_offsets", "dimensions", "orientation")
    optional_roles = ("offset", "vertex_subpixel", "depth")
    params: ClassVar[Mapping[str, Any]] = {
        **CenterNetDecoder.params,
        "vertex_threshold": 0.1,
        "vertex_top_k": 200,
        "snap_radius": 0.3,
        "dimensions": {},
        "classes_3d": None,
        "depth_prior_rel_std": None,
    }
    result = "detections"
    gives_3d = True

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        self.vertex_threshold = self.number("vertex_threshold", lo=0.0, hi=1.0)
        self.vertex_top_k = self.integer("vertex_top_k")
        self.snap_radius = self.number("snap_radius", lo=0.0)
        # None: the depth head only initialises the solve (RTM3D); a number: it is also a soft prior on
        # z with that relative standard deviation (ours; see geometry3d.solver.solve_boxes3d_batched)
        rel = self.p["depth_prior_rel_std"]
        self.depth_prior_rel_std = None if rel is None else self.number("depth_prior_rel_std", positive=True)
        classes = list(card.classes)
        wanted = self.p["classes_3d"]
        wanted = classes if wanted is None else wanted
        if not isinstance(wanted, list) or any(c not in classes for c in wanted):
            raise self.fail("classes_3d", f"expected a list of card classes {classes}, got {wanted!r}")
        dims = self.p["dimensions"]
        if not isinstance(dims, Mapping):
            raise self.fail("dimensions", "expected {class: {mean: [h, w, l], std: [h, w, l]}}")
        self.mean = np.full((len(classes), 3), np.nan)
        self.std = np.full((len(classes), 3), np.nan)
        for name in wanted:
            entry = dims.get(name)
            try:
                mean = np.asarray(entry["mean"], dtype=np.float64).reshape(3)
                std = np.asarray(entry["std"], dtype=np.float64).reshape(3)
            except (TypeError, KeyError, ValueError) as exc:
                raise self.fail(
                    f"dimensions.{name}", f"needs mean and std as three numbers (h, w, l): {exc}"
                ) from exc
            if np.any(mean <= 0) or np.any(std <= 0):
                raise self.fail(f"dimensions.{name}", "mean and std must be positive")
            self.mean[classes.index(name)] = mean
            self.std[classes.index(name)] = std

    def __call__(self, outputs: Mapping[str, NDArray]) -> list[Detections]:
        heat = self.output(outputs, "heatmap", 4)
        get = {r: self.output(outputs, r, 4) for r in self.tensors if r != "heatmap"}
        return [self._one3d(heat[b], {r: v[b] for r, v in get.items()}) for b in range(heat.shape[0])]

    def _one3d(self, heat: NDArray, o: dict[str, NDArray]) -> Detections:
        cls, y, x, score, boxes = self.peaks(heat, o["size"], o.get("offset"))
        n = len(score)
        s = self.stride
        vheat = o["vertex_heatmap"]
        _, h, w = vheat.shape
        # regressed vertices in output cells, (N, 9, 2), from the integer centre cell
        reg = o["vertex_offsets"][:, y, x].T.reshape(n, 9, 2).astype(np.float64)
        reg = reg + np.stack([x, y], axis=1)[:, None, :]
        kp = reg.copy()
        conf = np.full((n, 9), MIN_VERTEX_CONFIDENCE)
        if n:
            cut = logit(self.vertex_threshold) - 1e-6  # peaks on logits, as CenterNetDecoder.peaks
            vc, vy, vx, vlogit = heatmap_peaks(vheat, self.vertex_top_k, cut)
            vpos = np.stack([vx, vy], axis=1).astype(np.float64)
            if "vertex_subpixel" in o:
                vpos = vpos + o["vertex_subpixel"][:, vy, vx].T
            vscore = sigmoid(vlogit.astype(np.float64))
            side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / s
            radius = self.snap_radius * side + 1.0
            # confidence where nothing snaps: the heatmap at the regressed vertex (0 when off-map); all
            # nine vertex types at once
            rx, ry = reg[..., 0], reg[..., 1]
            cx = np.minimum(np.maximum(np.floor(rx).astype(int), 0), w - 1)
            cy = np.minimum(np.maximum(np.floor(ry).astype(int), 0), h - 1)
            inside = (rx >= 0) & (rx < w) & (ry >= 0) & (ry < h)
            at = sigmoid(vheat[_VERTEX_TYPES, cy, cx].astype(np.float64))
            conf = np.where(inside, np.maximum(at, MIN_VERTEX_CONFIDENCE), MIN_VERTEX_CONFIDENCE)
            if vc.size:
                # the nearest peak of the vertex's own type: peaks grouped by type (score order kept within
                # a type, so ties go to the better peak as before) and padded with far-away positions
                order = np.argsort(vc, kind="stable")
                counts = np.bincount(vc, minlength=9)
                starts = np.cumsum(counts) - counts
                vt = vc[order]
                slot = np.arange(vt.size) - starts[vt]
                grouped = np.full((9, int(counts.max()), 2), np.inf)
                grouped[vt, slot] = vpos[order]
                # Euclidean distances (N, 9, most peaks of a type), as np.linalg.norm computes them
                dx = rx[:, :, None] - grouped[None, :, :, 0]
                dy = ry[:, :, None] - grouped[None, :, :, 1]
                d = np.sqrt(dx * dx + dy * dy)
                best = d.argmin(axis=2)
                near = np.minimum.reduce(d, axis=2) < radius[:, None]  # the distance at the argmin
                peak = order[np.minimum(starts[None, :] + best, vt.size - 1)][near]
                kp[near] = vpos[peak]
                conf[near] = vscore[peak]
        keypoints = np.concatenate([kp * s, conf[..., None]], axis=-1)
        mean, std = self.mean[cls], self.std[cls]
        dims = mean * np.exp(o["dimensions"][:, y, x].T.astype(np.float64))
        extras = {
            "dimensions": dims,
            "dimension_std": std,
            "alpha": np.where(np.isfinite(mean[:, 0]), decode_multibin(o["orientation"][:, y, x].T), np.nan),
        }
        if "depth" in o:
            extras["depth"] = np.where(
                np.isfinite(mean[:, 0]), np.exp(o["depth"][0, y, x].astype(np.float64)), np.nan
            )
        return Detections(boxes, score, cls.astype(np.int64), keypoints, extras)
