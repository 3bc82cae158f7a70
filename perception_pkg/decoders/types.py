"""What decoders return: plain arrays in the network-input frame, mapped back with ``transformed``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from perception_pkg.preprocess.affine import AffineTransform

# per-row extras that are lengths in pixels: a frame change scales them (the others are metric or angles)
PIXEL_LENGTH_EXTRAS = ("keypoint_sigma",)


@dataclass(frozen=True)
class Detections:
    """Boxes of one image: ``boxes`` (N, 4) xyxy, ``scores`` (N,), ``class_ids`` (N,) int.

    ``keypoints`` (N, K, 3) holds x, y, score per keypoint for pose detectors (YOLOv8-pose) and the 9
    projected box vertices of RTM3D-style heads, else None. ``extras`` holds further per-row arrays that
    a frame change leaves alone (``dimensions`` (N, 3) h, w, l in metres, ``alpha`` (N,), ``depth`` (N,)),
    except the pixel lengths named in :data:`PIXEL_LENGTH_EXTRAS` (``keypoint_sigma`` (N, K)), which scale.
    Rows are sorted by descending score.
    """

    boxes: NDArray[np.float64]
    scores: NDArray[np.float64]
    class_ids: NDArray[np.int64]
    keypoints: NDArray[np.float64] | None = None
    extras: dict[str, NDArray[np.float64]] = field(default_factory=dict)

    @classmethod
    def empty(cls, num_keypoints: int | None = None) -> Detections:
        kp = np.zeros((0, num_keypoints, 3)) if num_keypoints else None
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64), kp)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def transformed(self, transform: AffineTransform) -> Detections:
        """The same detections in another frame (usually ``prepared.transform.inverse()``)."""
        kp = self.keypoints
        if kp is not None:
            xy = transform.apply_points(kp[..., :2])
            kp = np.concatenate([xy, kp[..., 2:]], axis=-1)
        extras = self.extras
        if any(k in extras for k in PIXEL_LENGTH_EXTRAS):
            # isotropic spread: scale by the map's mean length scale, as Keypoints.transformed does
            scale = float(transform.scale_factors().mean())
            extras = {k: v * scale if k in PIXEL_LENGTH_EXTRAS else v for k, v in extras.items()}
        return Detections(transform.apply_boxes(self.boxes), self.scores, self.class_ids, kp, extras)

    def clipped(self, hw: tuple[int, int]) -> Detections:
        """Boxes clipped to an image of size ``hw`` (keypoints are left alone: they may lie outside).

        A box with no area left inside the image is dropped: e.g. a peak in the letterbox padding of a
        non-4:3 photo would otherwise come out as a zero-height box on the image border.
        """
        h, w = hw
        boxes = self.boxes.copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        inside = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        clipped = Detections(boxes, self.scores, self.class_ids, self.keypoints, self.extras)
        return clipped if inside.all() else clipped.select(inside)

    def select(self, rows: NDArray) -> Detections:
        """The detections at ``rows`` (an index array or boolean mask), extras included."""
        kp = None if self.keypoints is None else self.keypoints[rows]
        extras = {k: v[rows] for k, v in self.extras.items()}
        return Detections(self.boxes[rows], self.scores[rows], self.class_ids[rows], kp, extras)


@dataclass(frozen=True)
class Keypoints:
    """Keypoints of N instances (top-down crops): ``xy`` (N, K, 2), ``scores`` (N, K).

    ``sigmas`` (N, K) is a per-keypoint spread when the decoder gives one (mixture-density heads).
    """

    xy: NDArray[np.float64]
    scores: NDArray[np.float64]
    sigmas: NDArray[np.float64] | None = field(default=None)

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    def transformed(self, transform: AffineTransform) -> Keypoints:
        """Map to another frame; a batched transform maps instance ``n`` with map ``n``."""
        sig = self.sigmas
        if sig is not None:
            # isotropic spread scales with the mean length scale of the map
            s = transform.scale_factors().mean(axis=-1)
            sig = sig * (s[:, None] if transform.batched else s)
        return Keypoints(transform.apply_points(self.xy), self.scores, sig)
