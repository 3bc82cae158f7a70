"""SoftPoolNet in torch: order invariance (and how TopK ties behave), regional convolutions that are
trained parameters and stay inside their region, ONNX export with static shapes and parity with torch,
the paper's losses, and PointMixup's optimal-assignment interpolation."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from perception_pkg.completion.sampling import resample  # noqa: E402
from perception_pkg.metrics.completion import chamfer_pcn  # noqa: E402
from perception_pkg.metrics.completion import emd as emd_np  # noqa: E402
from perception_pkg.training import completion_losses as L  # noqa: E402
from perception_pkg.training.completion_mixup import assignment, build_pool, interpolate  # noqa: E402
from perception_pkg.training.completion_net import (  # noqa: E402
    ExportWrapper,
    RegionalConv,
    SoftPoolConfig,
    SoftPoolNet,
)


def _car_like(rng: np.random.Generator, n: int) -> np.ndarray:
    pts = rng.uniform(-0.5, 0.5, (n, 3)) * [1.0, 0.4, 0.33]
    pts[: n // 2, 1] = 0.2
    return pts.astype(np.float32)


@pytest.fixture(scope="module")
def net() -> SoftPoolNet:
    torch.manual_seed(0)
    return SoftPoolNet().eval()


@pytest.mark.parametrize("head_scale", [1.0, 300.0])
def test_shuffling_the_input_changes_the_output_by_at_most_1e5(head_scale: float) -> None:
    """``head_scale`` 300 saturates the softmax as a trained head does (many activations exactly 1.0f):
    sorting by the softmax value itself then leaves ties between different points, which TopK breaks
    by position; the log-odds key does not tie."""
    torch.manual_seed(0)
    model = SoftPoolNet().eval()
    with torch.no_grad():
        model.head.weight.mul_(head_scale)
    rng = np.random.default_rng(0)
    dense = _car_like(rng, 1024)
    sparse = resample(_car_like(rng, 150), 1024, rng)  # 150 points, each duplicated ~7 times: TopK ties
    x = torch.from_numpy(np.stack([dense, sparse]))
    with torch.no_grad():
        act = model.encode(x)[0]
        if head_scale > 1:
            assert (act == 1.0).float().mean().item() > 0.05  # saturated, as after training
        ref = model(x)
        for seed in range(3):
            perm = torch.from_numpy(np.random.default_rng(seed).permutation(1024))
            out = model(x[:, perm])
            assert (out["fine"] - ref["fine"]).abs().max().item() <= 1e-5
            assert (out["coarse"] - ref["coarse"]).abs().max().item() <= 1e-5


def test_soft_pool_key_orders_like_the_activation_without_ties(net: SoftPoolNet) -> None:
    rng = np.random.default_rng(8)
    x = torch.from_numpy(_car_like(rng, 1024)[None])
    with torch.no_grad():
        net.head.weight.mul_(300.0)
        act, _, _, key = net.encode(x)
        net.head.weight.div_(300.0)
    for k in range(act.shape[1]):  # same order where the softmax is not tied, no ties where it is
        a, q = act[0, k].double(), key[0, k].double()
        distinct = a[:, None] != a[None, :]
        assert torch.equal((a[:, None] > a[None, :])[distinct], (q[:, None] > q[None, :])[distinct])
        assert (a == 1.0).sum() > 32 or k > 0  # region 0 saturates: the softmax alone would tie here
        top = torch.topk(q, 33).values  # what TopK selects, and the first one left out: all distinct
        assert len(torch.unique(top)) == 33


def test_regional_convolutions_are_trained_parameters(net: SoftPoolNet) -> None:
    torch.manual_seed(1)
    model = SoftPoolNet()
    names = dict(model.named_parameters())
    assert {"regconv1.conv.weight", "regconv2.conv.weight"} <= set(names)
    assert names["regconv1.conv.weight"].shape[-2:] == (1, 32)  # kernel (1, N_p)
    before = names["regconv1.conv.weight"].detach().clone()
    rng = np.random.default_rng(1)
    x = torch.from_numpy(np.stack([_car_like(rng, 1024) for _ in range(2)]))
    g = torch.from_numpy(np.stack([_car_like(rng, 2048) for _ in range(2)]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    L.chamfer(model(x)["coarse"], g).backward()
    opt.step()
    assert (names["regconv1.conv.weight"] - before).abs().max().item() > 0
    # forward does not rebuild layers: two calls agree, and a copy from the state dict agrees
    model.eval()
    copy = SoftPoolNet()
    copy.load_state_dict(model.state_dict())
    copy.eval()
    with torch.no_grad():
        a, b, c = model(x)["fine"], model(x)["fine"], copy(x)["fine"]
    assert torch.equal(a, b) and torch.equal(a, c)


def test_regional_convolution_never_mixes_regions_and_pads_at_the_end() -> None:
    torch.manual_seed(2)
    conv = RegionalConv(4, 5, k=8)
    x = torch.randn(1, 4, 3, 16)
    y = conv(x)
    assert y.shape == (1, 5, 3, 16)
    x2 = x.clone()
    x2[0, :, 1, 6] += 10.0  # perturb row 6 of region 1
    d = (conv(x2) - y).abs().amax(dim=1)[0]  # (regions, rows)
    assert d[0].max() == 0 and d[2].max() == 0  # other regions untouched
    assert d[1, :6].max() > 0 and d[1, 7:].max() == 0  # only rows i <= 6 < i + 8 see row 6
    assert d[1, : max(0, 6 - 7)].sum() == 0


def test_onnx_export_static_shapes_topk_and_parity(net: SoftPoolNet, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    import onnx

    from perception_pkg.training.completion_train import parity
    from perception_pkg.training.export import export_onnx

    path = export_onnx(
        ExportWrapper(net), torch.zeros(2, 1024, 3), tmp_path / "m.onnx", ["points"], ["coarse", "fine"],
        dynamic_batch=True, max_batch=32, dynamo=False,
    )  # fmt: skip
    model = onnx.load(str(path))
    ops = {n.op_type for n in model.graph.node}
    assert {"TopK", "GatherElements"} <= ops and all(n.domain in ("", "ai.onnx") for n in model.graph.node)
    dims = {v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim] for v in
            [*model.graph.input, *model.graph.output]}  # fmt: skip
    assert dims == {"points": ["batch", 1024, 3], "coarse": ["batch", 256, 3], "fine": ["batch", 2048, 3]}
    for node in model.graph.node:
        if node.op_type == "TopK":  # k is a constant of the graph (static), not computed from the input
            k_name = node.input[1]
            consts = {i.name for i in model.graph.initializer} | {
                o for n in model.graph.node if n.op_type == "Constant" for o in n.output
            }
            assert k_name in consts
    rng = np.random.default_rng(3)
    x = np.stack([_car_like(rng, 1024), resample(_car_like(rng, 60), 1024, rng)])
    report = parity(net, path, x)
    assert report["cd_pcn_relative_worst"] <= 1e-3 and report["max_abs_diff_fine"] < 1e-4
    # and with saturated activations (a trained head): ties are what broke parity before the log-odds key
    with torch.no_grad():
        net.head.weight.mul_(300.0)
    try:
        path = export_onnx(
            ExportWrapper(net), torch.zeros(2, 1024, 3), tmp_path / "s.onnx", ["points"], ["coarse", "fine"],
            dynamic_batch=True, max_batch=32, dynamo=False,
        )  # fmt: skip
        report = parity(net, path, x)
    finally:
        with torch.no_grad():
            net.head.weight.div_(300.0)
    assert report["cd_pcn_relative_worst"] <= 1e-3 and report["max_abs_diff_fine"] < 1e-4


def test_chamfer_loss_equals_the_dense_definition() -> None:
    rng = np.random.default_rng(4)
    a = torch.from_numpy(rng.normal(size=(3, 200, 3)))
    b = torch.from_numpy(rng.normal(size=(3, 150, 3)))
    got = L.chamfer(a, b, reduce=False)
    want = [chamfer_pcn(a[i].numpy(), b[i].numpy()) for i in range(3)]
    np.testing.assert_allclose(got.numpy(), want, atol=1e-7)
    a.requires_grad_(True)
    L.chamfer(a, b).backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def test_entropy_losses_bounds() -> None:
    r, n = 8, 64
    uniform_regions = torch.eye(r).repeat_interleave(n // r, dim=1).unsqueeze(0)  # one-hot, evenly spread
    assert L.inter_region(uniform_regions).item() == pytest.approx(0.0, abs=1e-6)
    assert L.intra_region(uniform_regions).item() == pytest.approx(0.0, abs=1e-6)
    all_in_one = torch.zeros(1, r, n)
    all_in_one[:, 0] = 1
    assert L.inter_region(all_in_one).item() == pytest.approx(np.log(r), abs=1e-5)
    flat = torch.full((1, r, n), 1.0 / r)
    assert L.intra_region(flat).item() == pytest.approx(np.log(r), abs=1e-5)


def test_boundary_loss_is_the_chamfer_of_overlapping_rows_only() -> None:
    r, nr = 2, 4
    coarse = torch.zeros(1, r * nr, 3)
    coarse[0, :nr, 0] = torch.arange(nr).float()  # region 0 along x
    coarse[0, nr:, 1] = torch.arange(nr).float() + 10  # region 1 along y, far away
    act = torch.zeros(1, r, r, nr)
    act[0, 0, 0], act[0, 1, 1] = 0.9, 0.9  # no row sure about the other region
    assert L.boundary(coarse, act).item() == 0.0
    act[0, 0, 1, 3] = 0.5  # row 3 of region 0 also belongs to region 1
    act[0, 1, 0, 0] = 0.5  # row 0 of region 1 also belongs to region 0
    d = float(np.linalg.norm(coarse[0, 3].numpy() - coarse[0, nr].numpy()))
    assert L.boundary(coarse, act).item() == pytest.approx(d, rel=1e-5)


def test_exact_emd_and_preserve_loss() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(1, 6, 3)), rng.normal(size=(1, 6, 3))
    brute = min(np.linalg.norm(a[0] - b[0][list(p)], axis=1).mean() for p in itertools.permutations(range(6)))
    assert L.emd(torch.from_numpy(a), torch.from_numpy(b)).item() == pytest.approx(brute, rel=1e-6)
    act = torch.softmax(torch.randn(2, 8, 1024), dim=1)
    pooled = torch.softmax(torch.randn(2, 8, 8, 32), dim=2)
    assert L.preserve(act, pooled, items=1).item() > 0


def test_pointmixup_assignment_is_optimal_and_interpolation_is_linear_in_emd() -> None:
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    phi = assignment(a, b)
    brute = min(itertools.permutations(range(6)), key=lambda p: np.linalg.norm(a - b[list(p)], axis=1).sum())
    np.testing.assert_array_equal(phi, brute)
    a, b = rng.normal(size=(64, 3)), rng.normal(size=(64, 3)) + 1.0
    bm = b[assignment(a, b)]
    np.testing.assert_allclose(interpolate(a, bm, 0.0), a, atol=1e-6)
    np.testing.assert_allclose(interpolate(a, bm, 1.0), bm, atol=1e-6)
    # the paper's Properties 1 and 3: on the shortest path, EMD(S1, S_lambda) = lambda EMD(S1, S2)
    full = emd_np(a, b)
    for lam in (0.25, 0.6):
        mid = interpolate(a, bm, lam).astype(np.float64)
        assert emd_np(a, mid) == pytest.approx(lam * full, rel=1e-4)
        assert emd_np(mid, b) == pytest.approx((1 - lam) * full, rel=1e-4)


def test_mixup_pool_draws_full_size_samples() -> None:
    rng = np.random.default_rng(7)
    partials = [_car_like(rng, int(n)) for n in (40, 700, 3000)]
    gts = np.stack([_car_like(rng, 2048) for _ in range(3)])
    pool = build_pool(partials, gts, 4, rng, n=64)
    x, g = pool.draw(0, 0.3, 1024, 2048)
    assert x.shape == (1024, 3) and g.shape == (2048, 3)
    assert np.isfinite(x).all() and np.isfinite(g).all()


def test_default_config_is_the_documented_reduction() -> None:
    c = SoftPoolConfig()
    assert (c.n_in, c.regions, c.rows, c.kernel, c.coarse, c.fine) == (1024, 8, 32, 32, 256, 2048)
