"""decoders/pose/rnn_association.py: the host loop over the recurrent step (stop rule, maximum count,
feedback wiring), the maps -> people decoding, and the card checks; planted step functions, no torch."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_pkg.cards import load_card
from perception_pkg.cards.errors import CardError
from perception_pkg.decoders.pose.rnn_association import (
    OMEGA,
    RnnAssociationDecoder,
    people_from_maps,
    run_loop,
)
from perception_pkg.decoders.registry import build_decoder

J, H, W = 17, 12, 16
SHAPES = {"h1": (1, 1, 1, 1), "c1": (1, 1, 1, 1), "h2": (1, 2, 1, 1), "c2": (1, 2, 1, 1)}
F4 = np.zeros((1, 3, H, W), np.float32)
F8 = np.zeros((1, 3, H // 2, W // 2), np.float32)


def logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def planted_step(probs: list[float], people_cells: np.ndarray | None = None, refine: int = 2):
    """A step whose h1 counts steps: person t = steps // refine gets stop probability ``probs[t]``
    (the last value repeats) and, with ``people_cells`` (P, J, 2) (x, y) in heatmap cells, its maps:
    integer cells get a peak of 0.9 with a 0.5 right neighbour (argmax + quarter shift = cell + (0.25,
    0)), float positions a Gaussian of sigma 1 cell centred there (what the model is trained to emit)."""
    calls: list[dict[str, np.ndarray]] = []

    def step(feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        calls.append({k: np.array(v) for k, v in feed.items()})
        n = round(float(feed["h1"].ravel()[0]))
        t = n // refine
        hm = np.zeros((1, J, H, W), np.float32)
        if people_cells is not None and t < len(people_cells):
            c = people_cells[t]
            if np.issubdtype(c.dtype, np.floating):  # Gaussians (sigma 1 cell, peak 0.9) at sub-cell points
                ys, xs = np.mgrid[0:H, 0:W]
                d2 = (xs[None] - c[:, 0, None, None]) ** 2 + (ys[None] - c[:, 1, None, None]) ** 2
                hm[0] = 0.9 * np.exp(-d2 / 2.0)
            else:
                hm[0, np.arange(J), c[:, 1], c[:, 0]] = 0.9
                hm[0, np.arange(J), c[:, 1], c[:, 0] + 1] = 0.5
        p = probs[min(t, len(probs) - 1)]
        return {
            "hm_out": hm,
            "p_logit": np.array([logit(p)], np.float32),
            "h1_out": feed["h1"] + 1.0,
            "c1_out": feed["c1"],
            "h2_out": feed["h2"],
            "c2_out": feed["c2"],
        }

    return step, calls


@settings(max_examples=40, deadline=None)
@given(max_people=st.integers(0, 8), refine=st.integers(1, 3), p=st.floats(OMEGA + 1e-3, 0.999))
def test_loop_stops_at_max_people_when_p_never_drops(max_people: int, refine: int, p: float) -> None:
    step, calls = planted_step([p], refine=refine)
    res = run_loop(step, F4, F8, SHAPES, J, max_people=max_people, refine_steps=refine)
    assert len(res.maps) == max_people == len(res.probs) == len(res.all_probs)
    assert res.steps == len(calls) == max_people * refine
    np.testing.assert_allclose(res.probs, p, rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=10), st.sampled_from([0.1, OMEGA, 0.5]))
def test_loop_emits_people_until_the_first_p_below_omega(probs: list[float], omega: float) -> None:
    probs = [float(np.clip(p, 1e-4, 1 - 1e-4)) for p in probs]
    step, _ = planted_step([*probs, 1e-4])
    res = run_loop(step, F4, F8, SHAPES, J, omega=omega, max_people=20)
    below = [i for i, p in enumerate([*probs, 1e-4]) if p < omega]
    assert len(res.maps) == below[0]
    assert len(res.all_probs) == below[0] + 1  # the stopping iteration is run, its person not emitted
    assert np.all(res.probs >= omega)


def test_feedback_loop_feeds_each_steps_maps_to_the_next_and_starts_each_person_from_init() -> None:
    cells = np.stack([np.stack([np.full(J, 2 + t), np.arange(J) % (H - 1)], -1) for t in range(3)])
    step, calls = planted_step([0.9, 0.9, 0.9, 0.1], cells)
    run_loop(step, F4, F8, SHAPES, J, init_value=0.05)
    assert len(calls) == 8
    for t in range(4):
        first, second = calls[2 * t], calls[2 * t + 1]
        np.testing.assert_array_equal(first["hm"], np.full((1, J, H, W), 0.05, np.float32))
        assert second["hm"].max() == (0.9 if t < 3 else 0.0)  # the first step's output, fed back
        assert float(second["h1"].ravel()[0]) == 2 * t + 1  # the state runs on across steps and people


def test_nan_stop_probability_stops_the_loop() -> None:
    def step(feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"hm_out": np.zeros((1, J, H, W), np.float32), "p_logit": np.array([np.nan], np.float32),
                **{f"{k}_out": feed[k] for k in SHAPES}}  # fmt: skip

    assert len(run_loop(step, F4, F8, SHAPES, J).maps) == 0


def _card(tmp_path: Path, **params: object) -> Path:
    p = {"step_model": "step.onnx", "step_sha256": "0" * 64, **params}
    lines = "\n".join(f"    {k}: {json.dumps(v)}" for k, v in p.items())
    text = f"""name: planted_rnn
task: pose
model: features.onnx
inputs:
- name: input
  shape: [1, 3, {H * 4}, {W * 4}]
  color: RGB
  scale: 1/255
  resize: {{policy: letterbox, pad_value: 0}}
outputs:
- name: f4
  shape: [1, 3, {H}, {W}]
- name: f8
  shape: [1, 3, {H // 2}, {W // 2}]
decoder:
  type: rnn_association
  outputs: {{f4: f4, f8: f8}}
  params:
{lines}
"""
    path = tmp_path / "card.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("refine", ["log_parabola", "quarter"])
def test_planted_step_model_yields_exactly_those_people(tmp_path: Path, refine: str) -> None:
    rng = np.random.default_rng(0)
    if refine == "quarter":
        people = np.stack(
            [np.stack([rng.integers(1, W - 2, J), rng.integers(1, H - 1, J)], -1) for _ in range(4)]
        )
        expected = (people + [0.25, 0.0] + 0.5) * 4.0  # cell alignment, stride 4, quarter shift to the right
        atol = 1e-9
    else:
        people = np.stack(
            [np.stack([rng.uniform(1, W - 2, J), rng.uniform(1, H - 2, J)], -1) for _ in range(4)]
        )
        expected = (people + 0.5) * 4.0  # the exact sub-cell joints (float32 maps: ~1e-4 px)
        atol = 2e-3
    probs = [0.95, 0.9, 0.8, 0.7, 0.05]
    decoder = build_decoder(load_card(_card(tmp_path, refine=refine), check_onnx=False))
    assert isinstance(decoder, RnnAssociationDecoder)
    step, _ = planted_step(probs, people)
    decoder.set_step(step, SHAPES)
    (dets,) = decoder({"f4": F4, "f8": F8})
    assert len(dets) == 4
    np.testing.assert_allclose(dets.scores, probs[:4], rtol=1e-5)  # already best first
    np.testing.assert_allclose(dets.keypoints[..., :2], expected, atol=atol)
    # score = the map's value at the argmax cell (for a Gaussian, 0.9 damped by the sub-cell distance)
    score = 0.9 * np.exp(-((people - np.round(people)) ** 2).sum(-1) / 2.0)
    np.testing.assert_allclose(dets.keypoints[..., 2], 0.9 if refine == "quarter" else score, rtol=1e-5)
    np.testing.assert_allclose(dets.boxes[:, :2], expected.min(axis=1), atol=atol)
    np.testing.assert_allclose(dets.boxes[:, 2:], expected.max(axis=1), atol=atol)
    np.testing.assert_array_equal(dets.extras["iteration"], np.arange(4))


def test_people_are_returned_best_first_with_their_iteration(tmp_path: Path) -> None:
    people = np.tile(np.stack([np.arange(J) % (W - 3) + 1, np.arange(J) % (H - 2) + 1], -1), (3, 1, 1))
    decoder = build_decoder(load_card(_card(tmp_path), check_onnx=False))
    step, _ = planted_step([0.5, 0.9, 0.7, 0.1], people)
    decoder.set_step(step, SHAPES)
    (dets,) = decoder({"f4": F4, "f8": F8})
    np.testing.assert_allclose(dets.scores, [0.9, 0.7, 0.5], rtol=1e-5)
    np.testing.assert_array_equal(dets.extras["iteration"], [1, 2, 0])


def test_joints_below_tau_score_zero_but_keep_their_location() -> None:
    maps = np.zeros((1, J, H, W), np.float32)
    maps[0, :, 3, 4] = 0.5
    maps[0, 0] = 0.0
    maps[0, 0, 5, 6] = 0.01  # below tau = 0.015
    kp, boxes, scores = people_from_maps(maps, np.array([0.8]), 4.0, 0.015)
    assert kp[0, 0, 2] == 0.0 and kp[0, 1, 2] == 0.5
    np.testing.assert_allclose(kp[0, 0, :2], [(6 + 0.5) * 4, (5 + 0.5) * 4])
    # the box ignores the dropped joint: all kept joints sit on one cell, so it is 1 px wide and tall
    np.testing.assert_allclose(boxes[0], [18.0, 14.0, 19.0, 15.0])
    assert scores.tolist() == [0.8]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"step_model": "../step.onnx"}, "decoder.params.step_model"),
        ({"step_model": "/tmp/step.onnx"}, "decoder.params.step_model"),
        ({"step_sha256": "abc"}, "decoder.params.step_sha256"),
        ({"omega": 1.5}, "decoder.params.omega"),
        ({"refine_steps": 0}, "decoder.params.refine_steps"),
        ({"import_path": "os.system"}, "decoder.params.import_path"),
    ],
)
def test_bad_card_parameters_are_card_errors(tmp_path: Path, params: dict, field: str) -> None:
    with pytest.raises(CardError) as err:
        load_card(_card(tmp_path, **params), check_onnx=False)
    assert field in str(err.value)


def test_step_graph_with_another_digest_is_refused_before_it_is_run(tmp_path: Path) -> None:
    (tmp_path / "step.onnx").write_bytes(b"not the graph the card names")
    decoder = build_decoder(load_card(_card(tmp_path), check_onnx=False))
    with pytest.raises(CardError, match="sha256"):
        decoder({"f4": F4, "f8": F8})


def test_missing_feature_output_is_a_clear_error(tmp_path: Path) -> None:
    decoder = build_decoder(load_card(_card(tmp_path), check_onnx=False))
    with pytest.raises(KeyError, match="f8"):
        decoder({"f4": F4})


@settings(max_examples=40, deadline=None)
@given(st.floats(2.0, W - 3.0), st.floats(2.0, H - 3.0), st.floats(0.7, 2.0))
def test_log_parabola_recovers_a_sub_cell_gaussian_peak_exactly(x: float, y: float, sigma: float) -> None:
    from perception_pkg.decoders.pose.rnn_association import log_parabola_peaks

    ys, xs = np.mgrid[0:H, 0:W]
    g = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    u, peak = log_parabola_peaks(np.broadcast_to(g, (1, J, H, W)))
    np.testing.assert_allclose(u[0, 0], [x, y], atol=1e-6)
    assert peak[0, 0] == g.max()


def test_log_parabola_keeps_border_and_flat_peaks_on_their_cell() -> None:
    from perception_pkg.decoders.pose.rnn_association import log_parabola_peaks

    maps = np.zeros((1, 2, H, W))
    maps[0, 0, 0, 0] = 1.0  # border: no neighbour on one side
    maps[0, 1, 4, 5] = maps[0, 1, 4, 6] = 0.5  # flat top: argmax takes the first, no shift along x
    u, _ = log_parabola_peaks(maps)
    np.testing.assert_allclose(u[0, 0], [0.0, 0.0])
    np.testing.assert_allclose(u[0, 1], [5.0 + 0.5, 4.0])  # equal neighbours: the vertex is halfway
