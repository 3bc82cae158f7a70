"""CloudFilter: non-finite removal, range and box crop, voxel down-sampling, other fields kept."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from perception_pkg.pointcloud import CloudFilter, voxel_downsample

DT = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<u2")])


def _cloud(xyz: np.ndarray) -> np.ndarray:
    pts = np.zeros(len(xyz), DT)
    pts["x"], pts["y"], pts["z"] = xyz.T
    pts["intensity"] = np.arange(len(xyz))
    pts["ring"] = np.arange(len(xyz)) % 64
    return pts


def test_filter_drops_nan_inf_and_points_outside_range_and_box() -> None:
    xyz = np.array(
        [
            [5, 0, 0],  # kept
            [np.nan, 0, 0],  # non-finite
            [0, np.inf, 0],  # non-finite
            [0.5, 0, 0],  # closer than range_min
            [200, 0, 0],  # beyond range_max
            [10, 0, 9],  # above box
            [-30, 20, 1],  # kept
        ],
        dtype=np.float32,
    )
    f = CloudFilter(range_min=1.0, range_max=100.0, box_min=(-50, -50, -2), box_max=(50, 50, 5))
    kept = f.apply(_cloud(xyz))
    assert kept["intensity"].tolist() == [0.0, 6.0]
    assert kept["ring"].tolist() == [0, 6]
    assert kept.dtype == DT


def test_filter_on_empty_cloud_returns_empty_with_same_fields() -> None:
    kept = CloudFilter(range_max=10).apply(np.zeros(0, DT))
    assert kept.shape == (0,) and kept.dtype == DT


def test_filter_without_xyz_fields_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"lacks fields \['z'\]"):
        CloudFilter().apply(np.zeros(3, [("x", "f4"), ("y", "f4")]))


@pytest.mark.parametrize(
    "kwargs",
    [dict(range_min=5, range_max=1), dict(box_min=(0, 0, 0), box_max=(1, -1, 1)), dict(voxel_size=-1)],
)
def test_filter_rejects_inconsistent_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        CloudFilter(**kwargs)


def test_from_params_reads_node_parameters_and_ignores_others() -> None:
    f = CloudFilter.from_params(
        {
            "range_min": 1,
            "range_max": 80.0,
            "box_min": [-1, -2, -3],
            "box_max": [1, 2, 3],
            "voxel_size": 0.2,
            "input_topic": "/x",
        }
    )
    assert f == CloudFilter(1.0, 80.0, (-1.0, -2.0, -3.0), (1.0, 2.0, 3.0), 0.2)


def test_voxel_downsample_keeps_first_point_of_each_voxel() -> None:
    xyz = np.array([[0.01, 0.01, 0], [0.05, 0.02, 0], [0.15, 0, 0], [0.11, 0.09, 0.0], [-0.01, 0, 0]])
    assert voxel_downsample(xyz, 0.1).tolist() == [0, 2, 4]


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float64, st.tuples(st.integers(0, 300), st.just(3)), elements=st.floats(-20, 20, allow_nan=False)
    ),
    st.floats(0.05, 5.0),
)
def test_voxel_downsample_one_point_per_occupied_voxel(xyz: np.ndarray, voxel: float) -> None:
    idx = voxel_downsample(xyz, voxel)
    keys = np.floor(xyz / voxel).astype(np.int64)
    assert len(idx) == len(np.unique(keys, axis=0))
    assert len(np.unique(keys[idx], axis=0)) == len(idx)
    assert np.all(np.diff(idx) > 0)


def test_voxel_downsample_of_float32_extremes_is_defined_and_silent() -> None:
    import warnings

    big = np.finfo(np.float32).max
    xyz = np.array([[big, big, big], [-big, -big, -big], [big, 0, 0], [0.01, 0, 0], [0.02, 0, 0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # overflow in the division or an undefined cast would warn
        idx = voxel_downsample(xyz, 0.1)
    assert idx.tolist() == [0, 1, 2, 3]  # extremes keep their own voxels; the two near 0 share one
