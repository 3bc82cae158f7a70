"""Resize and crop speed-ups against what they replaced: letterbox without padding skips the border copy,
and axis-aligned top-down crops build their remap maps separably; the pixels are the same to the bit."""

from __future__ import annotations

import cv2
import numpy as np

from perception_pkg.preprocess import AffineTransform, letterbox, topdown_crops, topdown_transform
from perception_pkg.preprocess.geometry import INTERPOLATION, warp_crops
from tests.helpers.hot_path_before import crop_maps


def _reference_crops(image: np.ndarray, transform: AffineTransform, hw: tuple[int, int]) -> np.ndarray:
    map_x, map_y = crop_maps(transform.inverse().cv_matrix(), hw)
    k = len(map_x)
    rows = (k * hw[0], hw[1])
    out = cv2.remap(image, map_x.reshape(rows), map_y.reshape(rows), INTERPOLATION["linear"],
                    borderMode=cv2.BORDER_CONSTANT, borderValue=(0.0,) * 4)  # fmt: skip
    return out.reshape(k, *hw, image.shape[2])


def test_topdown_crops_equal_the_full_map_reference() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    xy = np.column_stack([rng.uniform(-50, 600, 40), rng.uniform(-50, 400, 40)])
    boxes = np.column_stack([xy, xy + rng.uniform(2, 300, (40, 2))])
    for hw in ((128, 96), (256, 192)):
        crops, transform = topdown_crops(image, boxes, hw)
        np.testing.assert_array_equal(crops, _reference_crops(image, transform, hw))
    assert (
        np.array_equal(topdown_transform(boxes, (128, 96)).matrix, transform.matrix) is False
    )  # sizes differ


def test_rotated_crops_take_the_general_maps() -> None:
    image = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    t = AffineTransform(np.array([[[0.8, 0.2, 5.0], [-0.1, 0.9, 3.0]], [[0.5, 0.0, 1.0], [0.0, 0.5, 2.0]]]))
    np.testing.assert_array_equal(warp_crops(image, t, (64, 48)), _reference_crops(image, t, (64, 48)))


def test_letterbox_without_padding_is_the_plain_resize() -> None:
    image = np.random.default_rng(2).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    out, t = letterbox(image, (288, 384), 0.0)  # 0.6 on both axes: nothing to pad
    np.testing.assert_array_equal(out, cv2.resize(image, (384, 288), interpolation=cv2.INTER_LINEAR))
    np.testing.assert_allclose(t.matrix, [[0.6, 0, 0], [0, 0.6, 0]])
    padded, _ = letterbox(image, (320, 384), 0.0)  # 16 rows of padding top and bottom
    assert padded.shape == (320, 384, 3) and not padded[:16].any() and not padded[-16:].any()
    np.testing.assert_array_equal(padded[16:-16], out)
