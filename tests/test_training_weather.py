"""training/weather_*.py: the networks' structure and cost (MACs counted with forward hooks), ONNX export
with parity, the paired data (deterministic, pixel-aligned), the loss ladder and one training step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from perception_pkg.training.weather_data import CleanFrames, PairConfig, PairDataset, collate  # noqa: E402
from perception_pkg.training.weather_losses import DetectorFeatures, lsgan_d, lsgan_g, perceptual  # noqa: E402
from perception_pkg.training.weather_net import (  # noqa: E402
    ConditionNet,
    CurveNet,
    DeployedRestorer,
    ForkConfig,
    ForkGenerator,
    SandglassBlock,
    count_macs,
    count_params,
    restorer_cost,
)
from perception_pkg.training.weather_train import LADDER, Variant, terms_of  # noqa: E402

DETECTOR_PT = Path(__file__).resolve().parents[1] / "models" / "sim_detector" / "model.pt"


def test_mac_counter_counts_convolutions_transposed_convolutions_and_linear_layers_exactly() -> None:
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    assert count_macs(conv, torch.zeros(1, 3, 10, 10)) == 10 * 10 * 8 * 27
    dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
    assert count_macs(dw, torch.zeros(1, 8, 10, 10)) == 10 * 10 * 8 * 9
    deconv = torch.nn.ConvTranspose2d(4, 2, 3, 2, 1, output_padding=1)
    assert count_macs(deconv, torch.zeros(1, 4, 5, 5)) == 5 * 5 * 4 * 9 * 2  # per input element
    lin = torch.nn.Linear(16, 5)
    assert count_macs(lin, torch.zeros(2, 16)) == 2 * 16 * 5


def test_sandglass_block_follows_table_1() -> None:
    b = SandglassBlock(32, 32, 1, t=4)
    kinds = [(type(m).__name__, getattr(m, "groups", None)) for m in b.body]
    assert kinds[0] == ("Conv2d", 32) and kinds[2] == ("Conv2d", 1) and kinds[-1] == ("Conv2d", 32)
    assert b.body[2].out_channels == 8 and b.shortcut  # reduction by t, identity between the wide ends
    s2 = SandglassBlock(32, 64, 2, t=4)
    assert s2.body[0].kernel_size == (1, 1) and not s2.shortcut  # stride 2: first depthwise dropped
    assert s2(torch.zeros(1, 32, 16, 16)).shape == (1, 64, 8, 8)


def test_realtime_generator_is_under_3_gmac_at_640x480() -> None:
    rt = restorer_cost(ForkConfig(), (480, 640))
    assert 0.5 < rt["gmac"] <= 3.0 and rt["params_restorer"] < 200_000


@pytest.mark.slow
def test_the_paper_widths_cost_about_90_gmac_at_256x512() -> None:
    paper = restorer_cost(ForkConfig.paper(), (64, 128))  # 1/16 of 256x512: MACs scale with pixels
    assert 80 < 16 * paper["gmac"] < 100 and 9e6 < paper["params_restorer"] < 12e6


def test_translation_decoder_starts_as_the_identity_and_sees_the_input() -> None:
    torch.manual_seed(0)
    gen = ForkGenerator(ForkConfig(width=16, enc_blocks=1, dec_blocks=1))
    x = torch.rand(2, 3, 32, 48) * 1.99 - 0.99  # above the 1e-3 floor of the power curve
    with torch.no_grad():
        assert torch.allclose(gen.restore(x), x, atol=1e-5)  # zero maps: power 1, gain 1, bias 0
        assert gen.recon_x(gen.enc_x(x)).shape == x.shape
    with pytest.raises(ValueError, match="source image"):
        gen.trans_y(gen.enc_x(x))


def test_realtime_restorer_exports_to_onnx_with_static_shapes_and_parity(tmp_path: Path) -> None:
    import onnx

    from perception_pkg.training.export import export_onnx, parity_check

    torch.manual_seed(1)
    gen = ForkGenerator(ForkConfig(width=16, enc_blocks=1, dec_blocks=1))
    for p in gen.trans_y.out.parameters():
        p.data.normal_(0, 0.05)  # away from the identity start
    r = gen.restorer().eval()
    path = export_onnx(
        r, torch.zeros(1, 3, 48, 64), tmp_path / "m.onnx", ["image"], ["restored"], dynamo=False
    )
    dims = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 48, 64]
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 48, 64)).astype(np.float32)
    report = parity_check(r, path, {"image": x})
    assert report.passed and report.worst < 1e-4


def test_deployed_restorer_runs_the_trunk_on_a_thumbnail_and_matches_the_training_graph(
    tmp_path: Path,
) -> None:
    from perception_pkg.training.export import export_onnx, parity_check

    torch.manual_seed(2)
    gen = ForkGenerator(ForkConfig(width=16, enc_blocks=1, dec_blocks=1))
    x = torch.rand(1, 3, 48, 64) * 1.99 - 0.99
    with torch.no_grad():
        for s in (1, 4):  # zero maps (the identity start) stay the identity whatever the trunk's scale
            assert torch.allclose(DeployedRestorer(gen.enc_x, gen.trans_y, s)(x), x, atol=1e-5)
        for p in gen.trans_y.out.parameters():
            p.data.normal_(0, 0.05)
        full, deployed = gen.restorer()(x), DeployedRestorer(gen.enc_x, gen.trans_y, 1)(x)
        # the same maps; only exp and resize swap places, which moves outputs by far less than a grey level
        assert (full - deployed).abs().max() < 2 / 255
    costs = [restorer_cost(ForkConfig(), (480, 640), s)["gmac"] for s in (1, 4)]
    assert costs[1] < costs[0] / 10  # the trunk's MACs fall with its pixels; the curves are element-wise
    scaled = DeployedRestorer(gen.enc_x, gen.trans_y, 4).eval()
    path = export_onnx(
        scaled, torch.zeros(1, 3, 48, 64), tmp_path / "d.onnx", ["image"], ["restored"], dynamo=False
    )
    report = parity_check(scaled, path, {"image": x.numpy()})
    assert report.passed and report.worst < 1e-4
    with pytest.raises(ValueError, match="curve-map"):
        DeployedRestorer(gen.enc_x, gen.recon_y, 4)


def test_curve_net_is_a_10k_parameter_zero_dce_plus_plus_and_zero_curves_are_the_identity() -> None:
    net = CurveNet()
    assert 9_000 < count_params(net) < 12_000
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        for p in net.e7.parameters():
            p.zero_()
        assert torch.allclose(net(x), x)  # alpha = 0: LE(x) = x
    assert ConditionNet()(torch.zeros(2, 3, 120, 160)).shape == (2, 5)


def test_pair_dataset_is_deterministic_pixel_aligned_and_labels_its_conditions() -> None:
    rng = np.random.default_rng(0)
    frames = CleanFrames(
        [rng.integers(0, 256, (60, 80, 3), dtype=np.uint8) for _ in range(3)],
        [np.full((60, 80), 30.0, np.float32) for _ in range(3)],
    )
    ds = PairDataset(frames, PairConfig(crop_hw=(24, 32), crops=3, thumb_hw=(15, 20), seed=4), length=40)
    a, b = ds[7], ds[7]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    seen = set()
    for i in range(40):
        item = ds[i]
        assert item["degraded"].shape == (3, 24, 32, 3) and item["thumb"].shape == (1, 15, 20, 3)
        cond = int(item["condition"][0])
        seen.add(cond)
        if cond == 0:  # clear: input = target, crops cut at the same place (flips included)
            np.testing.assert_array_equal(item["degraded"], item["clean"])
            assert (item["severity"] == 0).all()
        else:
            assert 1 <= item["severity"][0] <= 5
    assert seen == {0, 1, 2, 3, 4}
    batch = collate([ds[0], ds[1]])
    assert batch["degraded"].shape[0] == 6 and batch["thumb"].shape[0] == 2


def test_fog_pairs_follow_the_koschmieder_model_of_the_distance() -> None:
    clean = np.full((60, 80, 3), 40, np.uint8)
    dist = np.full((60, 80), 50.0, np.float32)
    ds = PairDataset(
        CleanFrames([clean], [dist]),
        PairConfig(crop_hw=(60, 80), crops=1, conditions=("fog",), severities=(3,)),
        length=1,
    )
    item = ds[0]
    t = np.exp(-3 / 100 * 50.0)  # severity 3: beta = 3 / 100 m
    expected = 40 / 255 * t + np.array([0.80, 0.81, 0.83]) * (1 - t)
    np.testing.assert_allclose(item["degraded"][0, 0, 0] / 255, expected, atol=1 / 255)


def test_the_loss_ladder_adds_terms_cumulatively() -> None:
    assert LADDER == ("paired", "adv", "cycle", "perceptual", "full")
    assert terms_of("paired") == terms_of("paired")
    t = [terms_of(n) for n in LADDER]
    assert [x.adv for x in t] == [False, True, True, True, True]
    assert [x.cycle for x in t] == [False, False, True, True, True]
    assert [x.perceptual for x in t] == [False, False, False, True, True]
    assert [x.domain for x in t] == [False] * 4 + [True]
    assert terms_of("full@fog").condition == "fog" and terms_of("full#paper").domain
    with pytest.raises(ValueError):
        terms_of("full@hail")


def test_lsgan_and_perceptual_losses_vanish_where_they_should() -> None:
    ones, zeros = [torch.ones(2, 1, 4, 4)], [torch.zeros(2, 1, 4, 4)]
    assert float(lsgan_d(ones, zeros)) == 0.0 and float(lsgan_g(ones)) == 0.0
    assert float(lsgan_g(zeros)) == 1.0
    if not DETECTOR_PT.is_file():
        pytest.skip("shipped detector weights not present")
    feats = DetectorFeatures(DETECTOR_PT)
    x = torch.rand(1, 3, 48, 64) * 2 - 1
    assert float(perceptual(feats, x, x)) == 0.0
    assert float(perceptual(feats, x, -x)) > 0.1
    assert not any(p.requires_grad for p in feats.parameters())
    feats.train()
    assert not feats.stem[0].training  # the detector's BN statistics stay frozen


@pytest.mark.slow
def test_one_step_of_each_rung_trains_only_what_its_terms_need() -> None:
    torch.manual_seed(0)
    cfg = ForkConfig(width=16, enc_blocks=1, dec_blocks=1)
    x = torch.rand(4, 3, 32, 48) * 2 - 1
    y = torch.rand(4, 3, 32, 48) * 2 - 1
    cond = torch.tensor([1, 2, 3, 4])
    feats = DetectorFeatures(DETECTOR_PT if DETECTOR_PT.is_file() else None)
    expected = {
        "paired": {"pair"},
        "adv": {"pair", "adv", "d"},
        "cycle": {"pair", "adv", "rec", "cyc", "d"},
        "perceptual": {"pair", "adv", "rec", "cyc", "per", "d"},
        "full": {"pair", "adv", "rec", "cyc", "per", "lat", "cls", "d"},
    }
    for name, keys in expected.items():
        v = Variant(name, cfg, 1e-3, torch.device("cpu"))
        enc_y = [p.clone() for p in v.gen.enc_y.parameters()]
        trans_y = [p.clone() for p in v.gen.trans_y.parameters()]
        v.step(x, y, cond, feats)
        assert set(v.sums) == keys, name
        moved_y = any(not torch.equal(a, b) for a, b in zip(trans_y, v.gen.trans_y.parameters(), strict=True))
        assert moved_y, name
        same_enc_y = all(torch.equal(a, b) for a, b in zip(enc_y, v.gen.enc_y.parameters(), strict=True))
        assert same_enc_y == (name in ("paired", "adv")), name
    spec = Variant("paired@fog", cfg, 1e-3, torch.device("cpu"))
    spec.step(x, y, torch.tensor([0, 2, 3, 4]), None)  # no fog crop in the batch: nothing to learn
    assert spec.count == 0
