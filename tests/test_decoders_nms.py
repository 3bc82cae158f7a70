"""Class-aware NMS (OpenCV underneath) against a greedy reference, box IoU, clipping to the image."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_pkg.decoders import box_iou, nms


def greedy_reference(
    boxes: np.ndarray, scores: np.ndarray, thr: float, classes: np.ndarray | None
) -> list[int]:
    """Textbook greedy NMS: highest score first (ties by index), suppress IoU > thr within a class."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep: list[int] = []
    for i in order:
        ok = True
        for k in keep:
            same = classes is None or classes[i] == classes[k]
            if same and box_iou(boxes[i], boxes[k])[0, 0] > thr:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


def _boxes(rng: np.random.Generator, n: int, spread: float) -> np.ndarray:
    c = rng.uniform(0, spread, (n, 2))
    wh = rng.uniform(5, 60, (n, 2))
    return np.concatenate([c - wh / 2, c + wh / 2], axis=1)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(0, 80),
    thr=st.floats(0.1, 0.9),
    classes=st.integers(1, 4),
    ties=st.booleans(),
)
def test_nms_equals_greedy_reference(seed: int, n: int, thr: float, classes: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    boxes = _boxes(rng, n, spread=120)  # crowded: plenty of overlaps
    scores = rng.integers(0, 5, n) / 5.0 if ties else rng.uniform(0, 1, n)  # ties exercise ordering
    cls = rng.integers(0, classes, n)
    got = nms(boxes, scores, thr, cls)
    assert got.tolist() == greedy_reference(boxes, scores, thr, cls)
    agnostic = nms(boxes, scores, thr)
    assert agnostic.tolist() == greedy_reference(boxes, scores, thr, None)


def test_nms_suppresses_only_strictly_above_threshold() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 5.0]])  # IoU exactly 0.5
    assert box_iou(boxes[:1], boxes[1:])[0, 0] == 0.5
    assert nms(boxes, [0.9, 0.8], 0.5).tolist() == [0, 1]
    assert nms(boxes, [0.9, 0.8], 0.49).tolist() == [0]


def test_nms_is_class_aware() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10]])
    assert nms(boxes, [0.9, 0.8, 0.7], 0.3, class_ids=[0, 1, 0]).tolist() == [0, 1]
    assert nms(boxes, [0.9, 0.8, 0.7], 0.3).tolist() == [0]


def test_nms_max_detections_keeps_the_best_and_handles_empty() -> None:
    rng = np.random.default_rng(0)
    boxes = _boxes(rng, 50, spread=2000)  # sparse: nothing overlaps
    scores = rng.uniform(0, 1, 50)
    keep = nms(boxes, scores, 0.5, class_ids=np.zeros(50), max_detections=7)
    assert keep.tolist() == np.argsort(-scores)[:7].tolist()
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)


def test_nms_order_survives_scores_closer_than_float32() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10.0]])
    scores = np.array([0.5, 0.5 + 1e-12])  # equal in float32, which OpenCV uses
    assert nms(boxes, scores, 0.5).tolist() == [1]


def test_box_iou_values() -> None:
    a = np.array([[0, 0, 2, 2]])
    b = np.array([[1, 1, 3, 3], [2, 2, 4, 4], [0, 0, 2, 2], [5, 5, 5, 9]])
    np.testing.assert_allclose(box_iou(a, b)[0], [1 / 7, 0.0, 1.0, 0.0])


@pytest.mark.parametrize("n", [1, 2])
def test_nms_single_boxes(n: int) -> None:
    boxes = np.array([[0, 0, 1, 1], [5, 5, 6, 6]])[:n]
    assert nms(boxes, np.ones(n), 0.5).tolist() == list(range(n))


def test_clipping_drops_boxes_with_no_area_left_in_the_image_and_keeps_rows_aligned() -> None:
    from perception_pkg.decoders.types import Detections

    boxes = np.array([[-5.0, 10, 20, 30], [30, 100, 60, 130], [50, -20, 80, -1], [10, 10, 10, 40]])
    kp = np.arange(4 * 2 * 3, dtype=float).reshape(4, 2, 3)
    dets = Detections(
        boxes, np.array([0.9, 0.8, 0.7, 0.6]), np.array([0, 1, 0, 1]), kp, {"d": np.arange(4.0)}
    )
    # h, w = 100, 200: row 1 starts at the bottom edge, row 2 lies above the top, row 3 has no width
    out = dets.clipped((100, 200))
    np.testing.assert_array_equal(out.boxes, [[0.0, 10, 20, 30]])
    np.testing.assert_array_equal(out.scores, [0.9])
    np.testing.assert_array_equal(out.keypoints, kp[:1])
    np.testing.assert_array_equal(out.extras["d"], [0.0])
