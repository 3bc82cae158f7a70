"""training/pose_rnn_net.py: the paper's losses (Eq. 1 stop vector, Hungarian-matched heatmap L2, the
under- and over-count rules), the training unroll, and ONNX parity of the exported step graph with
torch, run through the decoder's own host loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from perception_pkg.training.pose_rnn_net import (  # noqa: E402
    OMEGA,
    STEP_INPUTS,
    STEP_OUTPUTS,
    RnnStep,
    gaussian_maps,
    hungarian_match,
    loss_predictions,
    pairwise_map_distance,
    predicted_count,
    rnn_loss,
    stop_targets,
    unroll,
)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_hungarian_matching_is_permutation_invariant(p: int, z: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    cost = rng.random((p, z))
    rows, cols = hungarian_match(cost)
    assert len(rows) == min(p, z)
    pr, pc = rng.permutation(p), rng.permutation(z)
    r2, c2 = hungarian_match(cost[pr][:, pc])
    # the same total, and the same pairs once mapped back through the permutations
    assert np.isclose(cost[rows, cols].sum(), cost[pr][:, pc][r2, c2].sum())
    got = sorted(zip(rows.tolist(), cols.tolist(), strict=True))
    assert got == sorted(zip(pr[r2].tolist(), pc[c2].tolist(), strict=True))


def test_hungarian_rejects_non_finite_costs() -> None:
    with pytest.raises(ValueError, match="finite"):
        hungarian_match(np.array([[0.0, np.nan]]))


@pytest.mark.parametrize(
    ("zhat", "z", "want"),
    [(0, 0, [0]), (2, 3, [1, 1, 1, 0]), (3, 3, [1, 1, 1, 0]), (5, 3, [1, 1, 1, 0, 0, 0]), (1, 0, [0, 0])],
)
def test_stop_vector_is_eq1(zhat: int, z: int, want: list[int]) -> None:
    got = stop_targets(zhat, z)
    assert got.tolist() == want and len(got) == max(zhat, z) + 1


def test_predicted_count_is_the_iterations_before_the_first_p_below_omega() -> None:
    assert predicted_count([0.9, 0.8, 0.2, 0.9]) == 2
    assert predicted_count([0.9, 0.9]) == 2  # never dropped: every iteration run counts
    assert predicted_count([0.1]) == 0


def test_under_count_keeps_only_confident_predictions_and_over_count_only_the_first_z() -> None:
    # z = 4, P drops at t = 2 (Zhat = 2 < z) but t = 3 is confident again: (a) keeps t with P >= omega
    assert loss_predictions([0.9, 0.8, 0.1, 0.7, 0.05], 4).tolist() == [0, 1, 3]
    # z = 2, Zhat = 4 > z: (a') only the first z predictions
    assert loss_predictions([0.9, 0.9, 0.9, 0.9, 0.1], 2).tolist() == [0, 1]
    assert loss_predictions([0.9, 0.1], 0).tolist() == []


def test_pairwise_map_distance_is_the_summed_squared_difference() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 2, 4, 5, generator=g), torch.rand(2, 2, 4, 5, generator=g)
    want = ((a[:, None] - b[None]) ** 2).sum(dim=(2, 3, 4))
    torch.testing.assert_close(pairwise_map_distance(a, b), want, rtol=1e-5, atol=1e-5)


def test_heatmap_loss_is_zero_for_the_right_people_in_any_order_and_positive_otherwise() -> None:
    people = np.zeros((3, 17, 3), np.float32)
    rng = np.random.default_rng(1)
    people[..., 0] = rng.uniform(8, 88, (3, 17))
    people[..., 1] = rng.uniform(8, 56, (3, 17))
    people[..., 2] = 2
    gt = torch.from_numpy(gaussian_maps(people, 3, (16, 24)))
    order = [2, 0, 1]
    maps = torch.zeros(4, 1, 17, 16, 24)
    maps[:3, 0] = gt[order]
    logits = torch.tensor([[3.0], [3.0], [3.0], [-3.0]])
    hm, stop, zhats = rnn_loss(maps, logits, [gt], [3])
    assert zhats == [3] and float(hm) == pytest.approx(0.0, abs=1e-6)
    assert float(stop) == pytest.approx(float(torch.nn.functional.softplus(torch.tensor(-3.0))), rel=1e-5)
    maps[0, 0] = 0.0  # one person missed: its whole target energy is the loss, averaged over 3 people
    hm2, _, _ = rnn_loss(maps, logits, [gt], [3])
    assert float(hm2) == pytest.approx(float((gt[2] ** 2).sum()) / 3, rel=1e-5)


def test_gaussian_maps_peak_at_the_cell_alignment_and_are_empty_for_unlabelled_joints() -> None:
    people = np.zeros((1, 17, 3), np.float32)
    people[0, :, :2] = [(5 + 0.5) * 4, (3 + 0.5) * 4]
    people[0, :, 2] = 2
    people[0, 4, 2] = 0
    maps = gaussian_maps(people, 1, (8, 10))
    assert maps[0, 0, 3, 5] == pytest.approx(1.0) and maps[0, 0].argmax() == 3 * 10 + 5
    assert maps[0, 4].max() == 0.0


def test_unroll_stops_at_max_people_when_the_stop_head_never_drops() -> None:
    torch.manual_seed(0)
    step = RnnStep(c4=4, c8=4, hidden=(4, 2), head=4)
    with torch.no_grad():
        step.stop.bias.fill_(10.0)
        step.stop.weight.zero_()
    f4, f8 = torch.zeros(2, 4, 8, 8), torch.zeros(2, 4, 4, 4)
    maps, logits = unroll(step, f4, f8, None, max_people=5)
    assert maps.shape == (5, 2, 17, 8, 8) and logits.shape == (5, 2)
    with torch.no_grad():
        step.stop.bias.fill_(-10.0)
    assert unroll(step, f4, f8, [3, 1], max_people=5)[0].shape[0] == 3  # stopped, but z + 1 = 3 reached


def _export_step(step: RnnStep, path: Path, f4: torch.Tensor, f8: torch.Tensor) -> None:
    hm = torch.zeros(1, step.joints, *f4.shape[2:])
    torch.onnx.export(
        step, (f4, f8, hm, *step.zero_state(f8)), path, input_names=list(STEP_INPUTS),
        output_names=list(STEP_OUTPUTS), opset_version=17, dynamo=False,
    )  # fmt: skip


def test_onnx_step_graph_matches_torch_through_the_host_loop(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    from perception_pkg.decoders.pose.rnn_association import run_loop

    torch.manual_seed(3)
    step = RnnStep(c4=4, c8=6, hidden=(6, 4), head=8).eval()
    with torch.no_grad():
        step.head[-1].weight.mul_(100.0)  # maps of a useful size, not the near-zero start
        step.stop.bias.fill_(2.0)
    f4, f8 = torch.rand(1, 4, 12, 16), torch.rand(1, 6, 6, 8)
    _export_step(step, tmp_path / "step.onnx", f4, f8)
    sess = ort.InferenceSession(str(tmp_path / "step.onnx"), providers=["CPUExecutionProvider"])

    def ort_step(feed):
        return dict(zip(STEP_OUTPUTS, sess.run(list(STEP_OUTPUTS), dict(feed)), strict=True))

    def torch_step(feed):
        with torch.no_grad():
            out = step(*(torch.from_numpy(np.asarray(feed[k])) for k in STEP_INPUTS))
        return {k: v.numpy() for k, v in zip(STEP_OUTPUTS, out, strict=True)}

    shapes = {k: tuple(t.shape) for k, t in zip(("h1", "c1", "h2", "c2"), step.zero_state(f8), strict=True)}
    a = run_loop(ort_step, f4.numpy(), f8.numpy(), shapes, 17, max_people=3)
    b = run_loop(torch_step, f4.numpy(), f8.numpy(), shapes, 17, max_people=3)
    assert len(a.maps) == len(b.maps) == 3 and a.steps == 6
    np.testing.assert_allclose(a.maps, b.maps, atol=1e-4)
    np.testing.assert_allclose(a.all_probs, b.all_probs, atol=1e-5)
    assert np.abs(a.maps).max() > 0.1  # the comparison is of real signal, not of zeros


def test_omega_is_sigmoid_of_minus_one() -> None:
    assert OMEGA == pytest.approx(1.0 / (1.0 + np.e)) == pytest.approx(0.2689, abs=1e-4)
