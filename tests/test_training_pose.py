"""Top-down pose training: data conventions, targets, augmentation geometry, a seconds-long smoke run,
export + cards, and the shipped models/sim_pose card's accuracy on a held-out frame."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from perception_pkg.cards.loader import load_card  # noqa: E402
from perception_pkg.cards.schema import parse_card  # noqa: E402
from perception_pkg.decoders.pose.integral import NonIntegralHeatmapError, soft_argmax  # noqa: E402
from perception_pkg.decoders.pose.mass_displacement import displaced_positions  # noqa: E402
from perception_pkg.decoders.registry import build_decoder  # noqa: E402
from perception_pkg.engines.runner import ModelRunner  # noqa: E402
from perception_pkg.paths import repo_root  # noqa: E402
from perception_pkg.pose.coco17 import flip_permutation  # noqa: E402
from perception_pkg.preprocess.pipeline import Preprocessor  # noqa: E402
from perception_pkg.training import pose_cards, pose_train  # noqa: E402
from perception_pkg.training.pose_data import (  # noqa: E402
    HELDOUT_SEED0,
    PoseDataSpec,
    get_set,
    heldout_spec,
    render_set,
    train_spec,
)
from perception_pkg.training.pose_metrics import network_inputs, oks_ap, pck  # noqa: E402

SMALL = ((64, 48),)


@pytest.fixture(scope="module")
def frame_set():
    """One rendered frame's people (training seed 0), at 64x48: ~2 s."""
    return render_set(PoseDataSpec(seeds=(0,), frames_per_scene=1, sizes=SMALL))


def test_splits_use_disjoint_seeds_and_distinct_cache_keys() -> None:
    tr, ho = train_spec(100), heldout_spec(20)
    assert set(tr.seeds).isdisjoint(ho.seeds) and min(ho.seeds) == HELDOUT_SEED0 > max(tr.seeds)
    assert tr.key() != ho.key() and train_spec(100).key() == tr.key()


def test_crops_and_keypoints_follow_the_runtime_conventions(frame_set) -> None:
    from perception_pkg.sim import SceneConfig, generate_scene, render_frame
    from perception_pkg.training.pose_data import _scene_config, persons_of_frame

    spec = PoseDataSpec(seeds=(0,), frames_per_scene=1, sizes=SMALL)
    frame = render_frame(generate_scene(0, _scene_config(spec)), 0)
    people = persons_of_frame(frame.objects, spec)
    assert len(people) == len(frame_set) >= 3
    assert isinstance(_scene_config(spec), SceneConfig)
    # sim pixel centres are integers, the stack's are at +0.5
    np.testing.assert_allclose(
        frame_set.keypoints[..., :2], np.stack([o.keypoints[:, :2] for o in people]) + 0.5
    )
    np.testing.assert_allclose(frame_set.boxes, np.stack([o.box2d for o in people]) + 0.5)
    # the training tensor is exactly what the card's preprocessing makes from the BGR camera image
    card = parse_card(pose_cards.card_dict("t", "m.onnx", (64, 48), "argmax", 1.5, {}, 32))
    prepared = Preprocessor.from_card(card)(np.ascontiguousarray(frame.image[..., ::-1]), frame_set.boxes)
    np.testing.assert_array_equal(network_inputs(frame_set.crops[(64, 48)]), prepared.tensor)
    np.testing.assert_allclose(frame_set.to_crop[(64, 48)], prepared.transform.matrix)
    kp = prepared.transform.apply_points(frame_set.keypoints[..., :2])
    np.testing.assert_allclose(frame_set.kp_crop[(64, 48)], kp, atol=1e-4)


def test_cache_round_trip(tmp_path: Path) -> None:
    spec = PoseDataSpec(seeds=(3,), frames_per_scene=1, sizes=SMALL)
    a = get_set(spec, tmp_path)
    assert (tmp_path / f"pose_{spec.key()}.npz").is_file() and (tmp_path / ".gitignore").read_text() == "*\n"
    b = get_set(spec, tmp_path)
    np.testing.assert_array_equal(a.crops[(64, 48)], b.crops[(64, 48)])
    np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_targets_peak_and_offset_sign() -> None:
    u = torch.tensor([[[5.3, 7.6], [0.0, 0.0]]])
    lab = torch.tensor([[True, False]])
    tg = pose_train.heatmap_targets(u, lab, (16, 12), sigma=1.0, eps=2.0)
    hm = tg["hm"][0, 0].numpy()
    assert np.unravel_index(hm.argmax(), hm.shape) == (8, 5)  # nearest cell (row 8, col 5)
    np.testing.assert_allclose(hm.max(), np.exp(-(0.3**2 + 0.4**2) / 2), rtol=1e-6)
    assert float(tg["hm"][0, 1].abs().max()) == 0.0 and float(tg["disk"][0, 1].max()) == 0.0
    disk = tg["disk"][0, 0].numpy().astype(bool)
    assert 9 <= disk.sum() <= 16
    # o = (target - x) / d: every cell displaced by d * o lands on the keypoint (the decoder's convention)
    xp, yp = displaced_positions(tg["ox"][0, 0].numpy(), tg["oy"][0, 0].numpy(), 2.0)
    np.testing.assert_allclose(xp, 5.3, atol=1e-5)
    np.testing.assert_allclose(yp, 7.6, atol=1e-5)


def test_soft_argmax_torch_matches_the_numpy_decoder() -> None:
    logits = np.random.default_rng(0).normal(0, 3, (4, 17, 16, 12)).astype(np.float32)
    ours = pose_train.soft_argmax_torch(torch.from_numpy(logits)).numpy()
    ref = soft_argmax(logits, on_invalid="ignore").keypoints
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_augmentation_moves_pixels_and_keypoints_together() -> None:
    """A Gaussian blob at a known crop point lands where the keypoint map sends it, mirrors included."""
    h, w = 64, 48
    rng = np.random.default_rng(1)
    maps, flip = pose_train.random_affines(16, (h, w), rng)
    assert flip.any() and (~flip).any()
    p = np.array([20.3, 30.7])  # continuous crop coordinates
    yy, xx = np.mgrid[0:h, 0:w] + 0.5  # pixel centres
    blob = np.exp(-((xx - p[0]) ** 2 + (yy - p[1]) ** 2) / (2 * 2.0**2)).astype(np.float32)
    images = torch.from_numpy(np.broadcast_to(blob, (16, 3, h, w)).copy())
    out = pose_train.warp_batch(images, maps)[:, 0].numpy()
    expect = maps[:, :, :2] @ p + maps[:, :, 2]
    mass = out.sum(axis=(1, 2))
    centroid = np.stack([(out * xx).sum(axis=(1, 2)) / mass, (out * yy).sum(axis=(1, 2)) / mass], -1)
    np.testing.assert_allclose(centroid, expect, atol=0.05)


def _args(tmp_path: Path, **kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    pose_train.add_arguments(parser)
    return parser.parse_args(
        ["--input", "64x48", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache"), "--quiet"]
        + [f"--{k.replace('_', '-')}={v}" for k, v in kw.items()]
    )


def test_training_smoke_export_and_cards(frame_set, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    data = frame_set
    model, record = pose_train.train(data, (64, 48), epochs=2, batch=4, log=lambda *_: None)
    assert record["train_crops"] == len(data) and record["map_hw"] == [16, 12]
    assert all(np.isfinite(v) for v in record["final_losses"].values())
    onnx = pose_train.export_model(model, (64, 48), tmp_path / "model_64x48.onnx")  # includes ORT parity
    assert onnx.stat().st_size < 5e6
    pose_train.export_model(model, (64, 48), tmp_path / "model_64x48_flip.onnx", flip=True)
    record.update({"command": "test", "train_scene_seeds": "0..0"})
    results = {v: {"oks_ap": 0.1 * i} for i, v in enumerate(pose_cards.DECODER_VARIANTS)}
    results["integral_flip"] = {"oks_ap": 0.05}
    cards = pose_cards.write_cards(tmp_path, "model_64x48", (64, 48), record, results, default_card=True)
    names = {f"card_64x48_{v}.yaml" for v in pose_cards.CARD_VARIANTS} | {"card.yaml"}
    assert {p.name for p in cards} == names
    flip_card = load_card(tmp_path / "card_64x48_integral_flip.yaml")
    assert flip_card.model_path.name == "model_64x48_flip.onnx" and flip_card.torch is None
    card = load_card(tmp_path)  # the default = the best by OKS AP (here the last variant)
    assert card.decoder.type == "mass_displacement" and card.decoder.params["voting"] == "noisy_or"
    from perception_pkg.sim import generate_scene, render_frame

    frame = render_frame(generate_scene(0, None), 0)
    image = np.ascontiguousarray(frame.image[..., ::-1])
    for path in cards:
        card = load_card(path)
        try:
            out = ModelRunner(card, backend="onnxruntime")(image, data.boxes[:2])
        except NonIntegralHeatmapError:
            # two epochs leave the integral head's logits nearly flat: its card must refuse them
            assert card.decoder.type == "integral"
            continue
        assert out.xy.shape == (2, 17, 2) and np.all(np.isfinite(out.xy))


def test_training_is_reproducible(frame_set) -> None:
    small = frame_set.subset(slice(0, 8))
    a, _ = pose_train.train(small, (64, 48), epochs=1, batch=4, seed=3, log=lambda *_: None)
    b, _ = pose_train.train(small, (64, 48), epochs=1, batch=4, seed=3, log=lambda *_: None)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name


def test_metrics_on_perfect_and_shifted_predictions(frame_set) -> None:
    gt = frame_set.keypoints[..., :2]
    perfect = oks_ap(gt, np.ones(len(frame_set)), frame_set)
    assert perfect["oks_ap"] == pytest.approx(1.0)
    ml = frame_set.areas >= 32**2
    assert perfect["people_ml"] == int(ml.sum())
    assert perfect["oks_ap_ml"] == pytest.approx(1.0) if ml.any() else np.isnan(perfect["oks_ap_ml"])
    p = pck(gt, frame_set)
    assert p["pck@0.05"] == 1.0 and p["mean_err_px"] == 0.0
    size = np.maximum(*(frame_set.boxes[:, 2:] - frame_set.boxes[:, :2]).T)
    shifted = gt + np.array([0.07, 0.0]) * size[:, None, None]  # 7 % of the box: fails @0.05, passes @0.1
    p = pck(shifted, frame_set)
    assert p["pck@0.05"] == 0.0 and p["pck@0.1"] == 1.0
    assert oks_ap(shifted, np.ones(len(frame_set)), frame_set)["oks_ap"] < 0.5


def test_shipped_default_card_localises_held_out_people() -> None:
    """models/sim_pose/card.yaml through ModelRunner on a held-out frame with its GT boxes (real values)."""
    from perception_pkg.sim import generate_scene, render_frame
    from perception_pkg.training.pose_data import _scene_config, persons_of_frame

    root = repo_root()
    assert root is not None
    card = load_card(root / "models" / "sim_pose")
    spec = heldout_spec(1)
    frame = render_frame(generate_scene(HELDOUT_SEED0 + 7, _scene_config(spec)), 0)
    people = persons_of_frame(frame.objects, spec)
    assert len(people) >= 3
    boxes = np.stack([o.box2d for o in people]) + 0.5
    gt = np.stack([o.keypoints for o in people])
    out = ModelRunner(card, backend="onnxruntime")(np.ascontiguousarray(frame.image[..., ::-1]), boxes)
    lab = gt[..., 2] > 0
    err = np.linalg.norm(out.xy - (gt[..., :2] + 0.5), axis=-1)
    size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    assert (err / size[:, None])[lab].__le__(0.1).mean() > 0.85  # PCK@0.1 by box


def test_flip_averaged_graph_is_mirror_equivariant() -> None:
    """FlipAveraged(x) mirrored back (left/right swapped, o_x negated) equals FlipAveraged(mirror(x))."""
    from perception_pkg.training.pose_model import FlipAveraged, SimPoseNet

    torch.manual_seed(0)
    perm = flip_permutation()
    net = FlipAveraged(SimPoseNet(17, 8), [int(i) for i in perm]).eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        a = net(x)
        b = net(torch.flip(x, dims=[3]))
    for i, (u, v) in enumerate(zip(a, b, strict=True)):
        back = torch.flip(v, dims=[3])[:, perm]
        torch.testing.assert_close(u, -back if i == 3 else back, atol=1e-5, rtol=1e-5)


def test_integral_card_refuses_the_shipped_models_mse_heatmaps() -> None:
    """Pointing the integral decoder at the trained network's MSE heatmap head (not its integral head) is
    refused: real heatmaps span ~1 nat, far below the 4-nat rule, while the integral head passes."""
    import yaml

    root = repo_root()
    assert root is not None
    folder = root / "models" / "sim_pose"
    data = yaml.safe_load((folder / "card_128x96_integral.yaml").read_text())
    held = render_set(PoseDataSpec(seeds=(HELDOUT_SEED0 + 3,), frames_per_scene=1, sizes=((128, 96),)))
    runner = ModelRunner(load_card(folder / "card_128x96_integral.yaml"), backend="onnxruntime")
    outputs = runner.engine.infer({"input": network_inputs(held.crops[(128, 96)])})
    runner.decoder(outputs)  # the integral head: accepted
    data["decoder"]["outputs"] = {"logits": "heatmaps"}
    wrong = build_decoder(parse_card(data, base_dir=folder))
    with pytest.raises(NonIntegralHeatmapError):
        wrong(outputs)
