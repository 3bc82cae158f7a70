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


@pytest.mark.parametrize("color", ["RGB", "BGR"])
@pytest.mark.parametrize("stats", [((0.5,), (0.5,)), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
def test_invert_planar_path_round_trips_exactly_and_matches_the_float64_inverse(color, stats) -> None:
    rng = np.random.default_rng(1)
    norm = Normalizer(1 / 255, stats[0], stats[1], color, "NCHW", "float32")
    images = rng.integers(0, 256, (2, 48, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(norm.invert(norm(images)), images)  # uint8 -> tensor -> uint8
    # arbitrary network outputs, beyond the range too: the float64 inverse, clipped and rounded (values
    # within float32 rounding of a .5 boundary may round the other way: at most one grey level)
    y = rng.uniform(-3, 3, (2, 3, 48, 64)).astype(np.float32)
    ref = np.clip(np.rint(norm.pixels(y)), 0, 255).astype(np.uint8)
    ref = ref[..., ::-1] if color == "RGB" else ref
    got = norm.invert(y)
    assert got.shape == (2, 48, 64, 3) and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - ref.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
