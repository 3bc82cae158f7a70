"""The shipped recurrent bottom-up card (models/sim_pose_rnn) through the stack: the card loads (both
graphs checked against their sha256), the estimator runs it with no boxes, replay's pose pipeline
publishes exactly what the estimator finds on each frame, and the exported graphs match torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception_pkg.paths import models_dir

CARD = models_dir() / "sim_pose_rnn" / "card.yaml"
pytestmark = pytest.mark.skipif(not CARD.is_file(), reason=f"shipped model not present: {CARD}")


def _sample_images() -> dict[int, np.ndarray]:
    from rosbags.highlevel import AnyReader

    from perception_pkg.bag import get_typestore
    from perception_pkg.msgs import image_to_bgr, stamp_to_ns
    from perception_pkg.sim.generate import ensure_sample_bag

    out = {}
    with AnyReader([ensure_sample_bag()], default_typestore=get_typestore()) as reader:
        conns = [c for c in reader.connections if c.topic == "/camera/image_raw"]
        for c, _, raw in reader.messages(conns):
            msg = reader.deserialize(raw, c.msgtype)
            out[stamp_to_ns(msg.header)] = np.ascontiguousarray(image_to_bgr(msg))
    return out


def test_shipped_card_is_a_bottom_up_pose_card_that_runs_without_boxes() -> None:
    from perception_pkg.pose import PoseEstimator

    est = PoseEstimator.from_card(CARD, backend="onnxruntime", threads=1)
    assert est.card.task == "pose" and not est.top_down
    assert est.card.decoder.type == "rnn_association"
    img = next(iter(_sample_images().values()))
    res = est(img)
    loop = est.runner.decoder.last
    assert len(res) == len(loop.maps) <= 20
    assert loop.steps == 2 * len(loop.all_probs)  # two steps (the feedback refinement) per iteration
    assert np.isfinite(res.keypoints).all() and res.keypoints.shape == (len(res), 17, 2)
    assert np.all((res.keypoints >= 0) & (res.keypoints <= [640, 480]))
    assert np.all(np.diff(res.box_scores) <= 0)  # best first
    np.testing.assert_allclose(res.box_scores, np.sort(loop.probs)[::-1])


@pytest.mark.slow
def test_replay_pose_pipeline_with_the_shipped_card_publishes_what_the_estimator_finds(
    tmp_path: Path,
) -> None:
    from rosbags.highlevel import AnyReader

    from perception_pkg.bag import get_typestore
    from perception_pkg.msgs import person_array_to_arrays, stamp_to_ns
    from perception_pkg.pose import PoseEstimator
    from perception_pkg.replay.runner import replay_bag
    from perception_pkg.sim.generate import ensure_sample_bag

    params = tmp_path / "params.yaml"
    params.write_text(f"pose:\n  ros__parameters:\n    pose_card: {CARD}\n    backend: onnxruntime\n")
    res = replay_bag(
        ensure_sample_bag(), tmp_path / "out", ["pose"], params_file=params, copy_inputs=False, progress=False
    )
    people = {}
    with AnyReader([res.output_bag], default_typestore=get_typestore()) as reader:
        conns = [c for c in reader.connections if c.topic == "/pose/people"]
        for c, _, raw in reader.messages(conns):
            msg = reader.deserialize(raw, c.msgtype)
            people[stamp_to_ns(msg.header)] = person_array_to_arrays(msg)
    images = _sample_images()
    assert set(people) == set(images)  # no boxes needed: every image gives a PersonArray
    est = PoseEstimator.from_card(CARD, backend="onnxruntime", max_people=20)
    for stamp, img in images.items():
        want = est(img)
        got = people[stamp]
        assert len(got) == len(want)
        if len(want):
            # the converters undo the messages' half-pixel shift; float32 fields
            np.testing.assert_allclose(got.keypoints, want.keypoints, atol=1e-3)
            np.testing.assert_allclose(got.keypoint_scores, want.scores, atol=1e-5)


def test_shipped_graphs_match_the_torch_weights() -> None:
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    from perception_pkg.training.pose_rnn_data import frozen_backbone
    from perception_pkg.training.pose_rnn_net import STEP_INPUTS, STEP_OUTPUTS, RnnFeatures
    from perception_pkg.training.pose_rnn_train import PoseRnn

    torch.set_num_threads(1)
    model = PoseRnn()
    model.load_state_dict(torch.load(CARD.parent / "model.pt", map_location="cpu"))
    model.eval()
    feats = RnnFeatures(frozen_backbone(), model.encoder).eval()
    x = torch.from_numpy(np.random.default_rng(0).random((1, 3, 288, 384), dtype=np.float32))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    fs = ort.InferenceSession(str(CARD.parent / "features.onnx"), so, providers=["CPUExecutionProvider"])
    ss = ort.InferenceSession(str(CARD.parent / "step.onnx"), so, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        f4, f8 = feats(x)
        o4, o8 = fs.run(["f4", "f8"], {"input": x.numpy()})
        np.testing.assert_allclose(o4, f4.numpy(), atol=1e-4)
        np.testing.assert_allclose(o8, f8.numpy(), atol=1e-4)
        state = model.step.zero_state(f8)
        hm = torch.full((1, 17, *f4.shape[2:]), 0.05)
        feed = dict(zip(STEP_INPUTS, (f4, f8, hm, *state), strict=True))
        for _ in range(4):  # two people's worth of steps, state carried
            want = model.step(*(feed[k] for k in STEP_INPUTS))
            got = ss.run(list(STEP_OUTPUTS), {k: v.numpy() for k, v in feed.items()})
            for w, g in zip(want, got, strict=True):
                np.testing.assert_allclose(g, w.numpy(), atol=1e-4)
            feed = {
                "f4": f4,
                "f8": f8,
                "hm": want[0],
                "h1": want[2],
                "c1": want[3],
                "h2": want[4],
                "c2": want[5],
            }
