"""RTM3D decoding through a card: planted head tensors -> grouped vertices -> solved 3D boxes.

The planted tensors are what a perfect network would output for known boxes, so every number the
decoder and solver return can be checked against the boxes we started from.
"""

from __future__ import annotations

import numpy as np
import pytest

from perception_pkg.cards.schema import parse_card
from perception_pkg.decoders.detection.rtm3d import MIN_VERTEX_CONFIDENCE
from perception_pkg.decoders.pose.mixture_pose import MixturePoseDecoder, sigma_from_raw
from perception_pkg.decoders.registry import build_decoder
from perception_pkg.geometry3d.box3d import box3d_keypoints, project_points
from perception_pkg.geometry3d.camera import CameraModel
from perception_pkg.geometry3d.lift import lift_boxes3d
from perception_pkg.geometry3d.multibin import encode_multibin, rotation_y_to_alpha

W, H, S = 640, 480, 4
K = np.array([[400.0, 0, (W - 1) / 2], [0, 400.0, (H - 1) / 2], [0, 0, 1]])
P = np.hstack([K, np.zeros((3, 1))])
MEAN = {"person": [1.7, 0.6, 0.5], "car": [1.5, 1.7, 4.0]}
STD = {"person": [0.1, 0.1, 0.1], "car": [0.1, 0.1, 0.4]}
# (class, [x, y, z, h, w, l, rotation_y]) bottom-centre boxes in the camera frame
BOXES = [(1, [2.0, 1.6, 25.0, 1.53, 1.62, 3.89, 0.3]), (0, [-3.0, 1.6, 12.0, 1.75, 0.55, 0.45, -1.2])]


def _card(extra_params: dict | None = None):
    names = ["hm", "wh", "reg", "kp_hm", "kp_off", "kp_reg", "dim", "rot", "dep"]
    chans = [2, 2, 2, 9, 18, 2, 3, 8, 1]
    data = {
        "name": "planted_rtm3d",
        "task": "detection",
        "model": "model.onnx",
        "inputs": [{"name": "input", "shape": [1, 3, H, W], "scale": "1/255", "resize": {"policy": "none"}}],
        "outputs": [{"name": n, "shape": [1, c, H // S, W // S]} for n, c in zip(names, chans, strict=True)],
        "decoder": {
            "type": "rtm3d",
            "outputs": {"heatmap": "hm", "size": "wh", "offset": "reg", "vertex_heatmap": "kp_hm",
                        "vertex_offsets": "kp_off", "vertex_subpixel": "kp_reg", "dimensions": "dim",
                        "orientation": "rot", "depth": "dep"},
            "params": {"stride": S, "score_threshold": 0.3,
                       "dimensions": {c: {"mean": MEAN[c], "std": STD[c]} for c in MEAN},
                       **(extra_params or {})},
        },
        "classes": ["person", "car"],
    }  # fmt: skip
    return parse_card(data)


def _planted(offset_noise: float = 0.0, drop_vertex: tuple[int, int] | None = None):
    """Head tensors (logits where the decoder applies a sigmoid) for BOXES; returns (outputs, truth)."""
    h, w = H // S, W // S
    o = {n: np.zeros((1, c, h, w), np.float32) for n, c in
         [("hm", 2), ("wh", 2), ("reg", 2), ("kp_hm", 9), ("kp_off", 18), ("kp_reg", 2), ("dim", 3),
          ("rot", 8), ("dep", 1)]}  # fmt: skip
    o["hm"][:] = -10.0
    o["kp_hm"][:] = -10.0
    truth = []
    for i, (cls, box) in enumerate(BOXES):
        b = np.array(box)
        v = project_points(P, box3d_keypoints(b[:3], b[3:6], b[6])) + 0.5  # continuous pixel frame
        x0, y0 = v.min(axis=0)
        x1, y1 = v.max(axis=0)
        ct = np.array([(x0 + x1) / 2, (y0 + y1) / 2]) / S
        ci = np.floor(ct).astype(int)
        o["hm"][0, cls, ci[1], ci[0]] = 3.0
        o["wh"][0, :, ci[1], ci[0]] = [(x1 - x0) / S, (y1 - y0) / S]
        o["reg"][0, :, ci[1], ci[0]] = ct - ci
        vc = v / S
        o["kp_off"][0, :, ci[1], ci[0]] = (vc - ci).reshape(-1) + offset_noise
        for j in range(9):
            if drop_vertex == (i, j):
                continue
            vi = np.floor(vc[j]).astype(int)
            o["kp_hm"][0, j, vi[1], vi[0]] = 2.0
            o["kp_reg"][0, :, vi[1], vi[0]] = vc[j] - vi
        name = ["person", "car"][cls]
        o["dim"][0, :, ci[1], ci[0]] = np.log(b[3:6] / np.array(MEAN[name]))
        centre = b[:3] - [0, b[3] / 2, 0]
        o["rot"][0, :, ci[1], ci[0]] = encode_multibin(rotation_y_to_alpha(b[6], centre[0], centre[2]))
        o["dep"][0, 0, ci[1], ci[0]] = np.log(centre[2])
        truth.append((cls, b, v, np.array([x0, y0, x1, y1])))
    return o, truth


def _camera() -> CameraModel:
    return CameraModel(W, H, K, np.zeros(5), np.eye(3), P, "plumb_bob", "camera_optical")


def test_rtm3d_decoder_returns_planted_boxes_vertices_and_attributes():
    outputs, truth = _planted()
    dets = build_decoder(_card())(outputs)[0]
    assert len(dets) == 2
    for cls, b, v, box2d in truth:
        i = int(np.flatnonzero(dets.class_ids == cls)[0])
        np.testing.assert_allclose(dets.boxes[i], box2d, atol=1e-4)
        np.testing.assert_allclose(dets.keypoints[i, :, :2], v, atol=1e-4)
        np.testing.assert_allclose(dets.keypoints[i, :, 2], 1 / (1 + np.exp(-2.0)), atol=1e-6)
        np.testing.assert_allclose(dets.extras["dimensions"][i], b[3:6], rtol=1e-5)
        assert dets.extras["depth"][i] == pytest.approx(b[2], rel=1e-5)


def test_rtm3d_lift_recovers_boxes_to_a_millimetre_through_camera_info():
    outputs, truth = _planted()
    dets = build_decoder(_card())(outputs)[0]
    boxes, rms = lift_boxes3d(dets, _camera())
    for cls, b, _, _ in truth:
        i = int(np.flatnonzero(dets.class_ids == cls)[0])
        np.testing.assert_allclose(boxes[i, :6], b[:6], atol=2e-3)
        assert abs(np.angle(np.exp(1j * (boxes[i, 6] - b[6])))) < 1e-3
        assert rms[i] < 0.05


def test_rtm3d_grouping_snaps_regressed_vertices_to_nearby_peaks():
    # regressed offsets 0.4 cells off: every vertex snaps back to its exact heatmap peak
    outputs, truth = _planted(offset_noise=0.4)
    dets = build_decoder(_card())(outputs)[0]
    for cls, _, v, _ in truth:
        i = int(np.flatnonzero(dets.class_ids == cls)[0])
        np.testing.assert_allclose(dets.keypoints[i, :, :2], v, atol=1e-4)


def test_rtm3d_vertex_without_peak_keeps_regression_with_low_confidence():
    outputs, truth = _planted(offset_noise=0.25, drop_vertex=(0, 3))
    dets = build_decoder(_card({"snap_radius": 0.0}))(outputs)[0]
    cls, _, v, _ = truth[0]
    i = int(np.flatnonzero(dets.class_ids == cls)[0])
    np.testing.assert_allclose(dets.keypoints[i, 3, :2], v[3] + 0.25 * S, atol=1e-4)
    assert dets.keypoints[i, 3, 2] == pytest.approx(MIN_VERTEX_CONFIDENCE, abs=0.01)


def test_rtm3d_card_without_class_dimensions_is_refused():
    from perception_pkg.cards.errors import CardError

    with pytest.raises(CardError, match=r"dimensions\.car"):
        build_decoder(_card({"dimensions": {"person": {"mean": MEAN["person"], "std": STD["person"]}}}))


def test_mixture_decoder_takes_the_max_alpha_component_and_publishes_sigma():
    h, w, m, k = 12, 16, 2, 17
    rng = np.random.default_rng(0)
    centre = np.full((1, 2, h, w), -10.0)
    centre[0, 0, 5, 7] = 2.0
    off = np.zeros((1, m * 2 * k, h, w))
    o1, o2 = rng.normal(0, 3, 2 * k), rng.normal(0, 3, 2 * k)
    off[0, : 2 * k, 5, 7], off[0, 2 * k :, 5, 7] = o1, o2
    sigma_raw = np.zeros((1, m, h, w))
    sigma_raw[0, :, 5, 7] = [0.5, -0.3]
    alpha = np.zeros((1, m, h, w))
    alpha[0, :, 5, 7] = np.log([0.3, 0.7])  # component 1 wins
    card = parse_card({
        "name": "mix", "task": "pose", "model": "m.onnx",
        "inputs": [{"name": "input", "shape": [1, 3, h * S, w * S], "resize": {"policy": "none"}}],
        "outputs": [{"name": n} for n in ("hm", "po", "ps", "pa")],
        "decoder": {"type": "mixture_pose", "outputs": {"centre": "hm", "offsets": "po", "sigma": "ps",
                    "alpha": "pa"}, "params": {"sigma_minimum": 0.25}},
        "classes": ["person", "car"],
    })  # fmt: skip
    dec = build_decoder(card)
    assert isinstance(dec, MixturePoseDecoder)
    (dets,) = dec({"hm": centre, "po": off, "ps": sigma_raw, "pa": alpha})
    assert len(dets) == 1 and dets.class_ids[0] == 0
    np.testing.assert_allclose(dets.keypoints[0, :, :2], (np.array([7.0, 5.0]) + o2.reshape(k, 2)) * S)
    sig = float(sigma_from_raw(-0.3, 0.25)) * S
    np.testing.assert_allclose(dets.extras["keypoint_sigma"][0], sig)


@pytest.mark.parametrize("noise_px", [0.0, 0.5, 3.0])
def test_batched_solver_matches_per_object_scipy_lm(noise_px: float):
    from perception_pkg.geometry3d.solver import solve_boxes3d, solve_boxes3d_batched

    rng = np.random.default_rng(7)
    n = 8
    boxes = np.column_stack([
        rng.uniform(-5, 5, n), np.full(n, 1.6), rng.uniform(8, 40, n),
        rng.uniform(1.4, 1.7, n), rng.uniform(1.6, 1.9, n), rng.uniform(3.6, 4.6, n), rng.uniform(-3, 3, n),
    ])  # fmt: skip
    kps = project_points(P, box3d_keypoints(boxes[:, :3], boxes[:, 3:6], boxes[:, 6]))
    kps = kps + rng.normal(0, noise_px, kps.shape)
    kw = {"yaw_prior": boxes[:, 6] + 0.05, "dims_std": np.array([0.13, 0.1, 0.41]),
          "confidences": rng.uniform(0.2, 1.0, (n, 9))}  # fmt: skip
    prior = np.array([1.53, 1.62, 3.89])
    ref = solve_boxes3d(kps, P, prior, **kw)
    got = solve_boxes3d_batched(kps, P, prior, **kw)
    for a, b in zip(ref, got, strict=True):
        assert b.success
        np.testing.assert_allclose(b.box, a.box, atol=1e-5)
        assert b.cost == pytest.approx(a.cost, rel=1e-7, abs=1e-9)


def _assert_same_detections(a, b) -> None:
    assert len(a) == len(b)
    for name in ("boxes", "scores", "class_ids", "keypoints"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.extras.keys() == b.extras.keys()
    for name in a.extras:
        np.testing.assert_array_equal(a.extras[name], b.extras[name], err_msg=name)


def test_rtm3d_decoder_equals_the_per_vertex_type_reference_on_model_outputs() -> None:
    """The shipped detector's heads on simulator frames: the all-types-at-once grouping gives the same
    detections, bit for bit, as the per-vertex-type loop it replaced (tests/helpers/hot_path_before.py)."""
    from tests.helpers import hot_path_before
    from tests.helpers.model_outputs import detector, detector_frames

    dec = detector().runner.decoder
    for frame in detector_frames():
        (got,) = dec(frame.outputs)
        (ref,) = hot_path_before.rtm3d_decode(dec, frame.outputs)
        assert len(got) >= 8  # candidates above the card's 0.1 threshold
        _assert_same_detections(got, ref)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rtm3d_grouping_equals_the_reference_with_ties_and_empty_vertex_types(seed: int) -> None:
    """Random heads with quantised (tied) vertex peaks, some vertex types without any peak, and vertices
    regressed off the map: the same detections as the per-type loop."""
    from tests.helpers import hot_path_before

    rng = np.random.default_rng(seed)
    o, _ = _planted()
    o["hm"][0] = np.round(rng.normal(-3, 2, o["hm"][0].shape), 1)
    o["kp_hm"][0] = np.round(rng.normal(-3, 1.5, o["kp_hm"][0].shape), 0)  # plateaus: ties everywhere
    o["kp_hm"][0, rng.choice(9, 3, replace=False)] = -10.0  # three vertex types with no peak
    o["kp_off"][0] = rng.normal(0, 30, o["kp_off"][0].shape)  # some far outside the map
    o["kp_reg"][0] = rng.uniform(0, 1, o["kp_reg"][0].shape)
    o["wh"][0] = rng.uniform(1, 40, o["wh"][0].shape)
    dec = build_decoder(_card({"top_k": 60, "vertex_top_k": 150}))
    (got,) = dec(o)
    (ref,) = hot_path_before.rtm3d_decode(dec, o)
    assert len(got) > 20
    _assert_same_detections(got, ref)
