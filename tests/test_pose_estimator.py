"""Pose core: planted top-down heatmaps decode to exactly-known keypoints through the whole path (crops
batched into one engine call), bottom-up cards, input checks, and the stamp matcher's invariants under
random event sequences.

``planted_topdown`` is also used by the node, evaluation and benchmark tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.pose import CountingEngine, expected_keypoints, planted_topdown
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_pkg.pose import PoseResult, StampMatcher, pose_scores
from perception_pkg.preprocess import letterbox_transform

K = 17
RNG = np.random.default_rng(11)
IMAGE = RNG.integers(0, 256, (480, 640, 3), dtype=np.uint8)
BOXES = np.array([[100.0, 120.0, 180.0, 330.0], [300.5, 60.25, 390.0, 300.0], [500.0, 200.0, 560.0, 420.0]])
BOX_SCORES = np.array([0.9, 0.6, 0.75])


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    pytest.importorskip("torch")
    return planted_topdown(tmp_path_factory.mktemp("planted_pose"))


def _estimator(card_path: Path, **kw: Any):
    from perception_pkg.cards import load_card
    from perception_pkg.engines import load_engine
    from perception_pkg.pose import PoseEstimator

    card = load_card(card_path)
    engine = CountingEngine(load_engine(card, "onnxruntime", threads=1))
    return PoseEstimator(card, engine=engine, **kw), engine


def test_topdown_planted_keypoints_exact_and_all_crops_in_one_engine_call(planted) -> None:
    est, engine = _estimator(planted[0])
    res = est(IMAGE, BOXES, BOX_SCORES)
    assert engine.batches == [3]
    assert res.keypoints.shape == (3, K, 2) and res.scores.shape == (3, K) and res.sigmas is None
    assert np.abs(res.keypoints - expected_keypoints(BOXES, planted[1])).max() < 1e-3
    np.testing.assert_allclose(res.scores, 0.9, atol=1e-6)
    np.testing.assert_allclose(res.person_scores, 0.9 * BOX_SCORES, atol=1e-6)
    np.testing.assert_array_equal(res.boxes, BOXES)
    assert set(res.timings) == {"preprocess", "inference", "decode"}


def test_no_boxes_means_no_engine_call_and_an_empty_result(planted) -> None:
    est, engine = _estimator(planted[0])
    res = est(IMAGE, np.zeros((0, 4)), np.zeros(0))
    assert len(res) == 0 and res.keypoints.shape == (0, K, 2) and engine.batches == []


def test_max_people_keeps_the_best_boxes(planted) -> None:
    est, engine = _estimator(planted[0], max_people=2)
    res = est(IMAGE, BOXES, BOX_SCORES)
    np.testing.assert_array_equal(res.boxes, BOXES[[0, 2]])
    assert engine.batches == [2]


@pytest.mark.parametrize(
    "boxes, scores",
    [
        (np.zeros((2, 3)), None),
        (np.array([[0.0, 0, np.nan, 10]]), None),
        (np.array([[10.0, 10, 5, 20]]), None),
        (BOXES, np.ones(2)),
    ],
    ids=["shape", "nan", "inverted", "scores-length"],
)
def test_bad_boxes_are_a_value_error(planted, boxes, scores) -> None:
    est, _ = _estimator(planted[0])
    with pytest.raises(ValueError):
        est(IMAGE, boxes, scores)


def test_bottom_up_card_uses_the_models_boxes_and_scales_sigma_from_extras(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from perception_pkg.decoders.types import Detections
    from perception_pkg.training.formats import write_model, yolov8_pose_card
    from perception_pkg.training.models import Planted, TinyYolov8

    net_hw = (256, 320)
    n = sum((net_hw[0] // s) * (net_hw[1] // s) for s in (8, 16, 32))
    t, _, _ = letterbox_transform(IMAGE.shape[:2], net_hw, "center")
    net_boxes = t.apply_boxes(BOXES)
    out = np.zeros((1, 5 + 3 * K, n), dtype=np.float32)
    anchors = np.array([10, 700, 1650])
    out[0, :2, anchors] = (net_boxes[:, :2] + net_boxes[:, 2:]) / 2
    out[0, 2:4, anchors] = net_boxes[:, 2:] - net_boxes[:, :2]
    out[0, 4, anchors] = BOX_SCORES
    kp_img = RNG.uniform(50, 400, (3, K, 2))
    kp_net = t.apply_points(kp_img)
    out[0, 5 + 3 * np.arange(K)[:, None], anchors] = kp_net[..., 0].T
    out[0, 6 + 3 * np.arange(K)[:, None], anchors] = kp_net[..., 1].T
    out[0, 7 + 3 * np.arange(K)[:, None], anchors] = 0.5
    card = yolov8_pose_card("bu", net_hw, nms_iou=0.95)
    path = write_model(Planted(TinyYolov8(1, K), [torch.from_numpy(out)]), card, tmp_path)
    est, engine = _estimator(path)
    assert not est.top_down
    res = est(IMAGE)  # no boxes needed
    order = np.argsort(-BOX_SCORES)
    assert np.abs(res.boxes - BOXES[order]).max() < 0.01
    assert np.abs(res.keypoints - kp_img[order]).max() < 0.01
    np.testing.assert_allclose(res.person_scores, 0.5 * BOX_SCORES[order], atol=1e-6)
    assert res.sigmas is None and engine.batches == [1]

    decoder = est.runner.decoder

    def with_sigma(outputs):  # a decoder that reports a spread in network-input pixels
        return [
            Detections(d.boxes, d.scores, d.class_ids, d.keypoints, {"keypoint_sigma": np.ones((len(d), K))})
            for d in decoder(outputs)
        ]

    with_sigma.result = decoder.result  # type: ignore[attr-defined]
    est.runner.decoder = with_sigma
    res = est(IMAGE)
    np.testing.assert_allclose(res.sigmas, 1.0 / t.scale_factors().mean(), rtol=1e-9)


def test_pose_score_is_mean_keypoint_score_times_box_score() -> None:
    s = np.array([[0.2, 0.4], [1.0, 0.0]])
    np.testing.assert_allclose(pose_scores(s, np.array([0.5, 0.8])), [0.15, 0.4])
    assert PoseResult.empty().keypoints.shape == (0, 17, 2)


# --- stamp matcher ------------------------------------------------------------------------------------

events = st.lists(
    st.tuples(
        st.sampled_from(["image", "detections", "tick"]),
        st.integers(0, 12),  # stamp: few values so pairs, repeats and misses all happen
        st.floats(0.0, 0.4),  # time step before the event
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(events, st.integers(1, 5), st.sampled_from([0.1, 0.5, 10.0]))
def test_matcher_pairs_equal_stamps_once_bounds_buffers_and_accounts_for_every_item(
    seq: list[tuple[str, int, float]], size: int, wait: float
) -> None:
    m: StampMatcher[tuple[str, int], tuple[str, int]] = StampMatcher(max_wait_s=wait, buffer_size=size)
    now = 0.0
    added = {"image": 0, "detections": 0}
    pairs = []
    for i, (kind, stamp, dt) in enumerate(seq):
        now += dt
        if kind == "tick":
            m.expire(now)
            continue
        added[kind] += 1
        add = m.add_image if kind == "image" else m.add_detections
        match = add(stamp, (kind, i), now)
        if match is not None:
            pairs.append(match)
            assert match.image[0] == "image" and match.detections[0] == "detections"
            assert match.stamp_ns == stamp
            assert now - match.arrived <= wait + 1e-12  # the partner had not expired
        assert max(m.pending()) <= size
    ids = [p.image[1] for p in pairs] + [p.detections[1] for p in pairs]
    assert len(ids) == len(set(ids))  # nothing matched twice
    c = m.counts
    assert c.matched == len(pairs)
    pi, pd = m.pending()
    assert added["image"] == c.matched + c.expired_image + c.evicted_image + c.replaced_image + pi
    assert (
        added["detections"]
        == c.matched + c.expired_detections + c.evicted_detections + c.replaced_detections + pd
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 10**12), min_size=1, max_size=30, unique=True), st.randoms())
def test_matcher_matches_everything_that_arrives_in_time_in_any_order(stamps: list[int], rnd) -> None:
    items = [("image", s) for s in stamps] + [("detections", s) for s in stamps]
    rnd.shuffle(items)
    m: StampMatcher[int, int] = StampMatcher(max_wait_s=1.0, buffer_size=len(stamps))
    got = []
    for t, (kind, s) in enumerate(items):
        add = m.add_image if kind == "image" else m.add_detections
        match = add(s, s, t * 1e-3)
        if match is not None:
            got.append(match.stamp_ns)
            assert match.image == match.detections == s
    assert sorted(got) == sorted(stamps) and m.counts.unmatched == 0 and m.pending() == (0, 0)


def test_matcher_expiry_and_eviction_are_counted() -> None:
    m: StampMatcher[str, str] = StampMatcher(max_wait_s=0.5, buffer_size=2)
    assert m.add_image(1, "a", 0.0) is None
    assert m.add_detections(1, "d", 0.6) is None  # the image waited 0.6 s > 0.5: expired first
    assert m.counts.expired_image == 1
    for s in (2, 3, 4):
        m.add_detections(s, "d", 0.7)
    assert m.counts.evicted_detections == 2 and m.pending() == (0, 2)  # stamps 1 and 2 pushed out
    assert m.add_image(4, "i", 0.8).detections == "d"
    assert m.expire(2.0) == 1 and m.counts.expired_detections == 1
    with pytest.raises(ValueError):
        StampMatcher(max_wait_s=0.0)
