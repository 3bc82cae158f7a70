"""engines.base.non_finite: the per-inference NaN/inf check, exact whatever the values."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from perception_pkg.engines.base import non_finite


@settings(max_examples=200, deadline=None)
@given(
    arrays(
        st.sampled_from([np.float16, np.float32, np.float64]),
        st.integers(1, 300),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=16),
    )
)
def test_non_finite_counts_exactly_the_nan_and_inf_values(a: np.ndarray) -> None:
    want = int(np.count_nonzero(~np.isfinite(a)))
    got = non_finite({"out": a})
    assert got == ({"out": (want, a.size)} if want else {})


def test_large_finite_values_whose_sum_overflows_are_not_reported() -> None:
    a = np.full((4, 1000), np.finfo(np.float32).max / 2, dtype=np.float32)
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.add.reduce(a, axis=None))  # the fast path's sum overflows...
    assert non_finite({"big": a}) == {}  # ...and the exact count clears it


def test_integer_and_empty_outputs_are_skipped_and_each_bad_output_is_named() -> None:
    outs = {
        "ids": np.arange(5),
        "empty": np.zeros((0, 3), np.float32),
        "ok": np.ones(7, np.float32),
        "nan": np.array([1.0, np.nan, np.inf], np.float32),
    }
    assert non_finite(outs) == {"nan": (2, 3)}
