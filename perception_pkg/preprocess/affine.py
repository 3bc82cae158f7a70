"""2-D affine maps between image frames, batched, with exact inverses.

Convention (the whole stack uses it): continuous pixel coordinates where pixel ``(i, j)`` covers
``[j, j+1) x [i, i+1)``. OpenCV's warp functions address pixel centres at integers instead; the
conversion between the two lives here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

# Stack coordinates (pixel column j spans [j, j + 1)) minus pixel-centre coordinates (the first pixel
# centred on 0: OpenCV, ROS messages such as CameraInfo, vision_msgs and Keypoint2D, COCO keypoints).
# Writers of those formats subtract it, readers add it back.
PIXEL_SHIFT = 0.5


@dataclass(frozen=True)
class AffineTransform:
    """``dst = A @ [x, y, 1]`` for one map (``matrix`` shape (2, 3)) or a batch (shape (N, 2, 3)).

    Maps source-image coordinates to network-input coordinates; ``inverse()`` goes back.
    """

    matrix: NDArray[np.float64]

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.shape[-2:] != (2, 3) or m.ndim not in (2, 3):
            raise ValueError(f"affine matrix must have shape (2, 3) or (N, 2, 3), got {m.shape}")
        object.__setattr__(self, "matrix", m)

    @classmethod
    def identity(cls) -> AffineTransform:
        return cls(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))

    @classmethod
    def scale_translate(cls, sx: ArrayLike, sy: ArrayLike, tx: ArrayLike, ty: ArrayLike) -> AffineTransform:
        """``x' = sx x + tx``, ``y' = sy y + ty``; array arguments give a batch."""
        sx, sy, tx, ty = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (sx, sy, tx, ty)))
        zero = np.zeros_like(sx)
        m = np.stack([np.stack([sx, zero, tx], -1), np.stack([zero, sy, ty], -1)], -2)
        return cls(m)

    @property
    def batched(self) -> bool:
        return self.matrix.ndim == 3

    def __len__(self) -> int:
        return self.matrix.shape[0] if self.batched else 1

    def __getitem__(self, index: int) -> AffineTransform:
        if not self.batched:
            raise IndexError("not a batched transform")
        return AffineTransform(self.matrix[index])

    def inverse(self) -> AffineTransform:
        lin = self.matrix[..., :2]
        t = self.matrix[..., 2:]
        inv = np.linalg.inv(lin)
        return AffineTransform(np.concatenate([inv, -inv @ t], axis=-1))

    def then(self, other: AffineTransform) -> AffineTransform:
        """The map applying ``self`` first, then ``other``."""
        a = _homogeneous(self.matrix)
        b = _homogeneous(other.matrix)
        return AffineTransform((b @ a)[..., :2, :])

    def apply_points(self, points: ArrayLike) -> NDArray[np.float64]:
        """Map points ``(..., 2)``. A batched transform maps ``(N, ..., 2)`` with map ``n`` on row ``n``."""
        p = np.asarray(points, dtype=np.float64)
        lin = self.matrix[..., :2]
        t = self.matrix[..., 2]
        if not self.batched:
            return p @ lin.T + t
        n = self.matrix.shape[0]
        if p.shape[0] != n:
            raise ValueError(f"batched transform of {n} maps got points with leading dim {p.shape[0]}")
        flat = p.reshape(n, -1, 2)
        out = np.einsum("nij,nkj->nki", lin, flat) + t[:, None, :]
        return out.reshape(p.shape)

    def apply_boxes(self, boxes: ArrayLike) -> NDArray[np.float64]:
        """Map ``(..., 4)`` xyxy boxes: the axis-aligned bounds of the mapped corners."""
        b = np.asarray(boxes, dtype=np.float64)
        corners = np.stack(
            [b[..., [0, 1]], b[..., [2, 1]], b[..., [0, 3]], b[..., [2, 3]]], axis=-2
        )  # (..., 4, 2)
        mapped = self.apply_points(corners)
        return np.concatenate([mapped.min(axis=-2), mapped.max(axis=-2)], axis=-1)

    def scale_factors(self) -> NDArray[np.float64]:
        """Per-axis length scale (|column norms|): how many dst pixels one src pixel becomes."""
        return np.linalg.norm(self.matrix[..., :2], axis=-2)

    def cv_matrix(self) -> NDArray[np.float64]:
        """The same map for OpenCV's integer-pixel-centre convention (for cv2.warpAffine / remap).

        With ``x_edge = x_cv + 0.5``: ``x'_cv = L x_cv + t + L (0.5, 0.5) - (0.5, 0.5)``.
        """
        lin = self.matrix[..., :2]
        t = self.matrix[..., 2] + lin @ np.array([0.5, 0.5]) - 0.5
        return np.concatenate([lin, t[..., None]], axis=-1)


def _homogeneous(m: NDArray[np.float64]) -> NDArray[np.float64]:
    bottom = np.zeros((*m.shape[:-2], 1, 3))
    bottom[..., 0, 2] = 1.0
    return np.concatenate([m, bottom], axis=-2)
