"""CenterNet peak extraction: the threshold-first peak test against the whole-map reference."""

from __future__ import annotations

import numpy as np
import pytest

from perception_pkg.decoders.detection.centernet import heatmap_peaks
from tests.helpers.hot_path_before import heatmap_peaks as reference_peaks


@pytest.mark.parametrize(
    ("threshold", "top_k"), [(-np.inf, 1000), (-1.0, 50), (0.5, 7), (10.0, 5), (-2.0, 1)]
)
def test_heatmap_peaks_equal_the_whole_map_reference(threshold: float, top_k: int) -> None:
    """Same peaks, same order, ties and plateaus included, for thresholds from none to above every cell."""
    rng = np.random.default_rng(4)
    for dtype in (np.float32, np.float64):
        heat = np.round(rng.normal(0, 1.5, (9, 24, 32)), 0).astype(dtype)  # plateaus: many equal cells
        heat[2] = -np.inf  # a channel with nothing
        got = heatmap_peaks(heat, top_k, threshold)
        ref = reference_peaks(heat, top_k, threshold)
        for a, b in zip(got, ref, strict=True):
            np.testing.assert_array_equal(a, b)
        # something to compare: no peaks only above every cell, else top_k or all of them
        assert (len(got[0]) == 0) == (threshold >= 10.0)
        assert len(got[0]) <= top_k
