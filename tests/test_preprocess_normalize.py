"""The normaliser's planar fast path (one cv2.split, a multiply-add per colour plane) against the
transpose-then-scale arithmetic it replaced: the same tensor, to the last bit, for every colour order,
layout, output dtype and mean/std."""

from __future__ import annotations

import numpy as np
import pytest

from perception_pkg.preprocess import Normalizer
from tests.helpers.hot_path_before import normalize as reference


@pytest.mark.parametrize("color", ["RGB", "BGR"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("stats", [((0.0,), (1.0,)), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
def test_normalizer_equals_the_transpose_then_scale_reference(color, layout, dtype, stats) -> None:
    rng = np.random.default_rng(0)
    norm = Normalizer(1 / 255, stats[0], stats[1], color, layout, dtype)
    images = [
        rng.integers(0, 256, (37, 53, 3), dtype=np.uint8),  # one image
        rng.integers(0, 256, (5, 128, 96, 3), dtype=np.uint8),  # a batch of crops
        rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)[:, ::-1],  # a non-contiguous view
        rng.uniform(0, 255, (9, 11, 3)).astype(np.float32),  # float pixels take the general path
    ]
    for im in images:
        got, ref = norm(im), reference(norm, im)
        assert got.dtype == ref.dtype and got.shape == ref.shape
        np.testing.assert_array_equal(got, ref)
