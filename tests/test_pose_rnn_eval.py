"""The stop-criterion statistics (count MAE, confusion) and the crowded-set selection (IoU >= 0.3) of
the recurrent pose evaluation, on hand-made counts and boxes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_pkg.training.pose_rnn_data import box_iou_matrix, crowded_images
from perception_pkg.training.pose_rnn_eval import OMEGAS, count_stats, target_count


def test_count_stats_mae_bias_exact_and_confusion() -> None:
    s = count_stats(np.array([1, 2, 3, 3]), np.array([1, 3, 1, 3]), top=4)
    assert s["mae"] == pytest.approx(0.75) and s["bias"] == pytest.approx(-0.25) and s["exact"] == 0.5
    conf = np.asarray(s["confusion"])
    assert conf[1, 1] == 1 and conf[2, 3] == 1 and conf[3, 1] == 1 and conf[3, 3] == 1 and conf.sum() == 4


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=30))
def test_confusion_rows_are_true_counts_and_sum_to_the_frames(pairs: list[tuple[int, int]]) -> None:
    t, p = np.array(pairs).T
    conf = np.asarray(count_stats(t, p, top=12)["confusion"])
    assert conf.sum() == len(t)
    np.testing.assert_array_equal(conf.sum(1), np.bincount(np.minimum(t, 12), minlength=13))


def test_count_stats_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="equal-length"):
        count_stats(np.array([1, 2]), np.array([1]))


def test_target_count_follows_the_training_rule() -> None:
    ok = {"bbox": [0, 0, 10, 30], "area": 200, "num_keypoints": 8}
    small = {"bbox": [0, 0, 10, 20], "area": 200, "num_keypoints": 8}
    few = {"bbox": [0, 0, 10, 30], "area": 200, "num_keypoints": 3}
    assert target_count([ok, small, few]) == 1
    assert target_count([ok] * 20) == 12  # at most 12 per frame, as in training


def test_box_iou_and_crowded_images() -> None:
    iou = box_iou_matrix(np.array([[0, 0, 10, 10], [5, 0, 10, 10], [100, 100, 5, 5]]))
    assert iou[0, 1] == pytest.approx(50 / 150) and iou[0, 2] == 0.0 and iou[1, 1] == pytest.approx(1.0)
    anns = [
        {"image_id": 1, "bbox": [0, 0, 10, 10]},
        {"image_id": 1, "bbox": [5, 0, 10, 10]},  # IoU 1/3 with the first
        {"image_id": 2, "bbox": [0, 0, 10, 10]},
        {"image_id": 2, "bbox": [8, 0, 10, 10]},  # IoU 2/18
        {"image_id": 3, "bbox": [0, 0, 10, 10]},
    ]
    assert crowded_images(anns, 0.3) == {1}
    assert crowded_images(anns, 0.1) == {1, 2}


def test_the_omega_sweep_is_the_papers() -> None:
    assert OMEGAS[0] == 0.1 and OMEGAS[2] == 0.5 and OMEGAS[1] == pytest.approx(0.2689, abs=1e-4)
