"""``perception eval detect`` end to end on a small simulated sequence: dataset folder and rosbag2, a
detector planted with the ground truth (exported ONNX, through its card) and an oracle callable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("open3d")

from perception_pkg.cli.main import main as cli_main
from perception_pkg.decoders.types import Detections
from perception_pkg.detection import DetectionResult
from perception_pkg.evaluation.detect import EvalSettings, evaluate
from perception_pkg.evaluation.report import write_report
from perception_pkg.evaluation.run import run_on_bag, run_on_dataset
from perception_pkg.evaluation.sources import load_dataset, read_bag
from perception_pkg.sim import SceneConfig, generate

W, H = 320, 240


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("evsim")
    cfg = SceneConfig.with_sensors(
        width=W, height=H, azimuth_steps=400, frames=2, people_per_100m=8.0, oncoming_cars_per_100m=1.0
    )
    generate(out, 21, 2, config=cfg, weather=(), shadows=False)
    return out


class Oracle:
    """A detector returning each frame's ground truth (2D and 3D) in turn, scores descending."""

    def __init__(self, root: Path) -> None:
        data = load_dataset(root)
        self.gts, self.i = data.gts, 0
        self.names = ("person", "car")

    def __call__(self, image: np.ndarray, camera: object) -> DetectionResult:
        gt = self.gts[self.i % len(self.gts)]
        self.i += 1
        n = len(gt.boxes)
        ids = np.array([self.names.index(c) for c in gt.classes.tolist()], dtype=np.int64)
        dets = Detections(gt.boxes.copy(), np.linspace(0.9, 0.5, n), ids)
        return DetectionResult(dets, self.names, gt.boxes3d.copy(), timings={"inference": 0.001})


def test_dataset_loads_with_camera_and_classes(sim: Path) -> None:
    data = load_dataset(sim / "dataset")
    assert data.class_names == ["person", "car"]
    assert len(data.images) == 2 and all(p.is_file() for p in data.images)
    assert data.camera.P.shape == (3, 4) and data.camera.width == W
    gt = data.gts[0]
    assert np.all(gt.boxes[:, 2:] > gt.boxes[:, :2]) and np.all(np.isfinite(gt.boxes3d))
    # the sequence has objects on both sides of the default filter
    small = (gt.boxes[:, 3] - gt.boxes[:, 1] < 20) | (gt.visible_pixels < 150)
    assert small.any() and (~small).any()


def test_oracle_scores_one_everywhere_including_ap3d(sim: Path) -> None:
    data = load_dataset(sim / "dataset")
    frames = run_on_dataset(Oracle(sim / "dataset"), data)
    # this short sequence's only kept car leaves the image by > 30%: keep truncated cars here
    report = evaluate(frames, data.class_names, EvalSettings(max_truncation_3d=1.0))
    for part in ("filtered", "unfiltered"):
        assert report[part]["coco"]["AP"] == pytest.approx(1.0)
        assert report[part]["tide"]["AP50"] == pytest.approx(100.0)
        assert report[part]["tide"]["counts"]["FP"] == report[part]["tide"]["counts"]["FN"] == 0
        k3 = report[part]["kitti3d"]
        assert k3["AP"] == pytest.approx(
            {"AP3D@0.5": 1.0, "AP3D@0.7": 1.0, "APBEV@0.5": 1.0, "APBEV@0.7": 1.0}
        )
    car = report["counts"]["per_class"]["car"]
    assert car["gt_ignored"] > 0 and car["gt_kept"] + car["gt_ignored"] == car["gt"]
    assert report["filtered"]["kitti3d"]["num_gt"] == car["gt_kept"]
    # KITTI moderate's truncation limit (default 30%) removes the truncated cars from the 3D GT only
    default = evaluate(frames, data.class_names, EvalSettings())
    truncated = sum(
        int(np.sum((g.classes == "car") & (g.truncation > 0.3) & ~small))
        for g, small in zip(data.gts, _small(data.gts), strict=True)
    )
    assert truncated > 0
    assert default["filtered"]["kitti3d"]["num_gt"] == car["gt_kept"] - truncated
    assert default["filtered"]["coco"]["AP"] == pytest.approx(1.0)


def _small(gts: list) -> list[np.ndarray]:
    return [(g.boxes[:, 3] - g.boxes[:, 1] < 20) | (g.visible_pixels < 150) for g in gts]


def test_bag_ground_truth_matches_the_dataset(sim: Path) -> None:
    """Same frames through the bag: GT boxes equal the json's (the +0.5 pixel-centre shift), 3D too."""
    data = load_dataset(sim / "dataset")
    frames = run_on_bag(Oracle(sim / "dataset"), read_bag(sim / "bag"))
    assert len(frames) == 2
    for f, gt in zip(frames, data.gts, strict=True):
        order_a = np.lexsort(gt.boxes.T)
        order_b = np.lexsort(f.gt.boxes.T)
        np.testing.assert_allclose(f.gt.boxes[order_b], gt.boxes[order_a], atol=1e-6)
        np.testing.assert_allclose(f.gt.boxes3d[order_b], gt.boxes3d[order_a], atol=1e-4)
        assert f.gt.classes[order_b].tolist() == gt.classes[order_a].tolist()
    report = evaluate(frames, ["person", "car"])
    assert report["filtered"]["coco"]["AP50"] == pytest.approx(1.0)
    assert report["counts"]["visible_pixels_known"] is False


def test_report_and_plots_written(sim: Path, tmp_path: Path) -> None:
    data = load_dataset(sim / "dataset")
    report = evaluate(run_on_dataset(Oracle(sim / "dataset"), data), data.class_names)
    written = write_report(report, tmp_path)
    assert set(written) == {"report", "pr_curves", "tide", "kitti_pr"}
    for path in written.values():
        assert path.stat().st_size > 1000
    assert json.loads(written["report"].read_text())["filtered"]["coco"]["AP"] == pytest.approx(1.0)
    assert written["tide"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _planted_yolox_card(tmp_path: Path, sim: Path) -> Path:
    """A TinyYolox whose exported graph outputs exactly frame 0's ground-truth boxes, one anchor each."""
    torch = pytest.importorskip("torch")
    from perception_pkg.decoders.detection.yolox import yolox_grid
    from perception_pkg.training.formats import write_model, yolox_card
    from perception_pkg.training.models import Planted, TinyYolox

    gt = load_dataset(sim / "dataset").gts[0]
    names = ["car", "person"]  # another order than the dataset's: classes are matched by name
    net_hw = (256, 320)  # letterbox top-left at scale 1: network pixels = image pixels
    grid, stride = yolox_grid(net_hw, (8, 16, 32))
    raw = np.zeros((1, len(grid), 5 + len(names)), dtype=np.float32)
    anchors = np.arange(len(gt.boxes)) * 7  # any anchor can carry any box
    s = stride[anchors, None]
    raw[0, anchors, :2] = (gt.boxes[:, :2] + gt.boxes[:, 2:]) / 2 / s - grid[anchors]
    raw[0, anchors, 2:4] = np.log((gt.boxes[:, 2:] - gt.boxes[:, :2]) / s)
    raw[0, anchors, 4] = 1.0
    cls = np.array([names.index(c) for c in gt.classes.tolist()])
    raw[0, anchors, 5 + cls] = np.linspace(0.95, 0.5, len(anchors))
    module = Planted(TinyYolox(num_classes=len(names)), [torch.from_numpy(raw)])
    # overlapping GT of one class must survive NMS
    card = yolox_card("planted_sim", net_hw, names, nms_iou=0.99, score_threshold=0.1)
    return write_model(module, card, tmp_path / "model")


@pytest.fixture(scope="module")
def planted_card(sim: Path, tmp_path_factory) -> Path:
    return _planted_yolox_card(tmp_path_factory.mktemp("planted"), sim)


def test_cli_planted_detector_on_dataset_and_bag(
    sim: Path, planted_card: Path, tmp_path: Path, capsys
) -> None:
    card = planted_card
    for source, out in ((sim / "dataset", tmp_path / "ds"), (sim / "bag", tmp_path / "bag")):
        args = ["eval", "detect", str(source), "--card", str(card), "--backend", "onnxruntime"]
        assert cli_main([*args, "--threads", "1", "--max-frames", "1", "--out", str(out)]) == 0
        report = json.loads((out / "detect_report.json").read_text())
        assert report["model"]["name"] == "planted_sim"
        assert report["source"]["frames"] == 1
        for part in ("filtered", "unfiltered"):
            assert report[part]["coco"]["AP50"] == pytest.approx(1.0)
            assert report[part]["coco"]["AP"] == pytest.approx(1.0)
            assert all(v == 0 for v in report[part]["tide"]["main_dAP"].values())
        assert report["filtered"]["kitti3d"]["skipped"].startswith("the detections carry no 3D")
        assert (out / "pr_iou50.png").is_file() and (out / "tide.png").is_file()
    printed = capsys.readouterr().out
    assert "TIDE dAP at AP50 100.0" in printed and "person" in printed


def test_cli_rejects_unknown_source_and_missing_pose_module(tmp_path: Path) -> None:
    assert cli_main(["eval", "detect", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    try:
        import perception_pkg.cli.eval_pose_cmd  # noqa: F401
    except ModuleNotFoundError:
        assert cli_main(["eval", "pose", "anything"]) == 2


def test_cli_scores_detections_already_in_a_bag(sim: Path, tmp_path: Path) -> None:
    """A replay output bag's detections are scored without a detector; here the GT topics stand in for
    a detector's: every Detection2D uses ROS's pixel convention, so they score perfectly."""
    out = tmp_path / "replayed"
    args = ["eval", "detect", str(sim / "bag"), "--out", str(out), "--no-plots"]
    topics = ["--detections-topic", "/ground_truth/detections_2d"]
    topics += ["--detections3d-topic", "/ground_truth/detections_3d"]
    assert cli_main(args + topics) == 0
    report = json.loads((out / "detect_report.json").read_text())
    assert report["model"] == {"source": "bag topic /ground_truth/detections_2d"}
    assert report["source"]["frames"] == 2
    assert report["filtered"]["coco"]["AP50"] == pytest.approx(1.0)
    assert report["filtered"]["coco"]["AP"] == pytest.approx(1.0)
    assert report["filtered"]["kitti3d"]["AP"]["AP3D@0.7"] == pytest.approx(1.0)
    assert not (out / "tide.png").exists()


def test_cli_scores_a_replay_output_bag(sim: Path, planted_card: Path, tmp_path: Path) -> None:
    """``perception replay`` with the detection pipeline writes /detection/detections_2d next to the copied
    ground truth; scoring that topic gives what running the detector here gives (frame 0: AP50 1)."""
    from perception_pkg.replay import replay_bag

    card = planted_card
    params = tmp_path / "params.yaml"
    params.write_text(
        f"detection:\n  ros__parameters:\n    model_card: {card}\n    backend: onnxruntime\n    threads: 1\n"
    )
    replay_bag(sim / "bag", tmp_path / "replay", ["detection"], params_file=params, progress=False)
    out = tmp_path / "scored"
    args = ["eval", "detect", str(tmp_path / "replay" / "bag"), "--out", str(out), "--no-plots"]
    assert cli_main([*args, "--detections-topic", "/detection/detections_2d", "--max-frames", "1"]) == 0
    report = json.loads((out / "detect_report.json").read_text())
    assert report["filtered"]["coco"]["AP"] == pytest.approx(1.0)
    assert report["unfiltered"]["coco"]["AP50"] == pytest.approx(1.0)
