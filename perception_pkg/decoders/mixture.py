"""Card decoder for bottom-up pose with mixture-density offsets (:mod:`.pose_mixture` does the maths).

Roles: ``centre`` (B, C, h, w) centre logits or probabilities (channel ``centre_channel`` is the person
class), ``offsets`` (B, M * 2K, h, w) per component the centre -> keypoint offsets in output cells,
``sigma`` (B, M, h, w) raw sigma (``sigma_from_raw`` with ``sigma_minimum``, as trained), ``alpha``
(B, M, h, w) mixture logits; optional ``size`` / ``offset`` give the person box as CenterNet does.
Offsets are taken from the integer centre cell, so keypoint = (cell + O_m*) * stride in input pixels.

Returns :class:`Detections` with ``keypoints`` (N, K, 3) (x, y, score = the centre score: the model has
no per-keypoint confidence) and ``extras["keypoint_sigma"]`` (N, K) in input pixels: the uncertainty the
paper publishes, carried to ``Keypoint2D.sigma``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.base import Decoder, sigmoid
from perception_pkg.decoders.pose_mixture import find_centres, select_component, sigma_from_raw
from perception_pkg.decoders.types import Detections


class MixturePoseDecoder(Decoder):
    roles = ("centre", "offsets", "sigma", "alpha")
    optional_roles = ("size", "offset")
    params: ClassVar[Mapping[str, Any]] = {
        "stride": 4,
        "centre_channel": 0,
        "centre_activation": "sigmoid",
        "score_threshold": 0.3,
        "max_people": 20,
        "sigma_minimum": 0.25,
        "num_keypoints": 17,
    }
    result = "detections"

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        self.stride = self.number("stride", positive=True)
        self.channel = self.integer("centre_channel", minimum=0)
        self.activation = self.choice("centre_activation", ["sigmoid", "none"])
        self.threshold = self.number("score_threshold", lo=0.0, hi=1.0)
        self.max_people = self.integer("max_people")
        self.sigma_minimum = self.number("sigma_minimum", lo=0.0)
        self.k = self.integer("num_keypoints")

    def __call__(self, outputs: Mapping[str, NDArray]) -> list[Detections]:
        centre = self.output(outputs, "centre", 4)[:, self.channel]
        if self.activation == "sigmoid":
            centre = sigmoid(centre.astype(np.float64))
        off = self.output(outputs, "offsets", 4)
        sig = self.output(outputs, "sigma", 4)
        alpha = self.output(outputs, "alpha", 4)
        b, m = sig.shape[:2]
        if off.shape[1] != m * 2 * self.k:
            raise ValueError(f"offsets have {off.shape[1]} channels, expected M * 2K = {m * 2 * self.k}")
        img, rows, cols, scores = find_centres(centre, self.max_people, self.threshold)
        cells = np.stack([cols, rows], axis=-1).astype(np.float64)
        kp, sigma, _, _ = select_component(
            cells,
            off[img, :, rows, cols].reshape(-1, m, 2 * self.k),
            sigma_from_raw(sig[img, :, rows, cols], self.sigma_minimum),
            alpha[img, :, rows, cols],
        )
        s = self.stride
        xy = kp * s
        if "size" in self.tensors:
            wh = self.output(outputs, "size", 4)[img, :, rows, cols] * s
            ctr = cells
            if "offset" in self.tensors:
                ctr = ctr + self.output(outputs, "offset", 4)[img, :, rows, cols]
            ctr = ctr * s
            boxes = np.concatenate([ctr - wh / 2, ctr + wh / 2], axis=1)
        else:
            boxes = np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1) if len(xy) else np.zeros((0, 4))
        out = []
        for i in range(b):
            sel = img == i
            n = int(sel.sum())
            keypoints = np.concatenate(
                [xy[sel], np.broadcast_to(scores[sel, None, None], (n, self.k, 1))], -1
            )
            out.append(
                Detections(
                    boxes[sel].astype(np.float64),
                    scores[sel],
                    np.full(n, self.channel, dtype=np.int64),
                    keypoints,
                    {"keypoint_sigma": sigma[sel] * s},
                )
            )
        return out
