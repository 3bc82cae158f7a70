"""Pose evaluation: PCK/AUC and OKS numbers checked by hand, pycocotools AP of perfect predictions, and
`perception eval pose` end to end: a COCO-format folder whose ground truth is where the planted model's
keypoints land (AP 1, PCK 1), the sample bag, and the real COCO assets (runs, writes report and plots)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.pose import expected_keypoints, planted_topdown

from perception_pkg.evaluation.pose import PckAccumulator
from perception_pkg.metrics.keypoints import ALPHAS


def _ann(i: int, img: int, xy: np.ndarray, box: list[float], v: int = 2) -> dict:
    kps = np.concatenate([xy, np.full((17, 1), v)], axis=1).reshape(-1).tolist()
    return {"id": i, "image_id": img, "category_id": 1, "iscrowd": 0, "bbox": box,
            "area": box[2] * box[3], "keypoints": kps, "num_keypoints": 17}  # fmt: skip


XY = np.random.default_rng(2).uniform(10, 90, (17, 2))


def test_pck_auc_for_a_known_offset_and_misses() -> None:
    acc = PckAccumulator()
    box = [0.0, 0.0, 50.0, 100.0]  # normaliser: the longer side, 100 px
    acc.add(
        [_ann(1, 1, XY, box)], (XY + np.array([9.5, 0.0]))[None], np.ones(1)
    )  # every keypoint 0.095 L away
    r = acc.result()
    pck = np.array(r["pck"])
    assert np.all(pck[ALPHAS < 0.095] == 0) and np.all(pck[ALPHAS >= 0.1] == 1)
    # trapezoid: 0.4 of full area plus half a 0.01 step, over 0.5
    assert r["auc"] == pytest.approx((0.4 + 0.005) / 0.5)
    acc.add([_ann(2, 2, XY, box)], np.zeros((0, 17, 2)), np.zeros(0))  # nobody found: all misses
    assert acc.result()["pck@0.5"] == pytest.approx(0.5)


def _args(source: Path, out: Path, **kw) -> argparse.Namespace:
    from perception_pkg.cli.eval_pose_cmd import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    argv = [str(source), "--out", str(out), "--backend", "onnxruntime"]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    return p.parse_args(argv)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("torch")
    return planted_topdown(tmp_path_factory.mktemp("planted_eval"))


def test_eval_pose_cli_on_a_coco_folder_where_the_planted_model_is_right(planted, tmp_path: Path) -> None:
    from perception_pkg.cli.eval_pose_cmd import run

    card, crop_xy = planted
    folder = tmp_path / "set"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images, anns, dets = [], [], []
    boxes = {
        1: np.array([[50.0, 40.0, 150.0, 300.0], [300.0, 100.0, 380.0, 260.0]]),
        2: np.array([[10.0, 10, 90, 200]]),
    }
    for img_id, b in boxes.items():
        cv2.imwrite(str(folder / f"{img_id}.png"), rng.integers(0, 255, (320, 480, 3), dtype=np.uint8))
        images.append({"id": img_id, "file_name": f"{img_id}.png", "width": 480, "height": 320})
        # ground truth on pixel centres = where the planted keypoints land, shifted to COCO's convention
        kp = expected_keypoints(b, crop_xy) - 0.5
        for j, box in enumerate(b):
            xywh = [box[0], box[1], box[2] - box[0], box[3] - box[1]]
            anns.append(_ann(len(anns) + 1, img_id, kp[j], xywh))
            dets.append({"image_id": img_id, "category_id": 1, "bbox": xywh, "score": 0.8 - 0.1 * j})
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
    (folder / "person_keypoints.json").write_text(json.dumps(gt))
    (folder / "person_detections.json").write_text(json.dumps(dets))
    assert run(_args(folder, tmp_path / "out", card=card)) == 0
    report = json.loads((tmp_path / "out" / "pose_report.json").read_text())
    assert report["boxes"] == "detections" and report["images"] == 2 and report["people_gt"] == 3
    assert report["coco_keypoints"]["AP"] == pytest.approx(1.0)
    assert report["pck"]["pck@0.05"] == pytest.approx(1.0) and report["pck"]["auc"] > 0.97
    assert (tmp_path / "out" / "pose_pck.png").is_file() and (
        tmp_path / "out" / "pose_per_keypoint.png"
    ).is_file()
    assert len(json.loads((tmp_path / "out" / "pose_keypoints.json").read_text())) == 3


def test_eval_pose_cli_on_the_sample_bag(planted, tmp_path: Path) -> None:
    from perception_pkg.cli.eval_pose_cmd import run
    from perception_pkg.sim.generate import ensure_sample_bag

    assert run(_args(ensure_sample_bag(), tmp_path, card=planted[0], max_images=3)) == 0
    report = json.loads((tmp_path / "pose_report.json").read_text())
    assert report["images"] == 3 and report["people_gt"] > 0 and report["boxes"] == "gt"
    assert 0.0 <= report["coco_keypoints"]["AP"] <= 1.0


def test_eval_pose_cli_on_the_real_coco_assets(planted, assets: Path, tmp_path: Path) -> None:
    from perception_pkg.cli.eval_pose_cmd import run

    coco = assets / "coco"
    if not (coco / "person_keypoints.json").is_file():
        pytest.skip(f"no COCO keypoint sample in {coco}")
    assert run(_args(coco, tmp_path, card=planted[0], no_plots=True)) == 0
    report = json.loads((tmp_path / "pose_report.json").read_text())
    assert report["boxes"] == "detections" and report["images"] == 2
    assert report["people_predicted"] == len(json.loads((coco / "person_detections.json").read_text()))
    assert 0.0 <= report["coco_keypoints"]["AP"] <= 1.0  # a planted model: only that it runs and scores
