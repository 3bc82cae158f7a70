"""`perception eval detect` on real-world inputs: a folder of images scored against a COCO instances json,
the detect-only mode over an image folder (COCO results json + bag), and a bag without ground truth
refused with a hint instead of a traceback. A planted model returns known boxes, so the figures are exact."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.detection import SimBag, make_sim_bag, planted_for_frame

from perception_pkg.evaluation.run import EvalInputError, detect_only, run_detect_eval
from perception_pkg.evaluation.sources import find_coco_json, load_coco_folder

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimBag:
    return make_sim_bag(tmp_path_factory.mktemp("real_inputs_sim"))


def _folder(tmp_path: Path, sim: SimBag, boxes: np.ndarray, labels: list[str]) -> Path:
    """frame 0 of the sim bag as a PNG, and a COCO instances json whose truth is ``boxes``."""
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "frame_0.png"), cv2.cvtColor(sim.images[0], cv2.COLOR_RGB2BGR))
    cats = [{"id": 1, "name": "person"}, {"id": 2, "name": "car"}]
    anns = [
        {"id": i + 1, "image_id": 7, "category_id": 1 + ["person", "car"].index(lab), "iscrowd": 0,
         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": float((b[2] - b[0]) * (b[3] - b[1]))}
        for i, (b, lab) in enumerate(zip(boxes.tolist(), labels, strict=True))
    ]  # fmt: skip
    h, w = sim.images[0].shape[:2]
    coco = {"images": [{"id": 7, "file_name": "frame_0.png", "width": w, "height": h}], "annotations": anns}
    (folder / "instances.json").write_text(json.dumps({**coco, "categories": cats}))
    return folder


def test_an_image_folder_is_scored_against_its_coco_json(sim: SimBag, tmp_path: Path) -> None:
    planted = planted_for_frame(tmp_path / "model", sim)
    folder = _folder(tmp_path, sim, planted.boxes, planted.labels)
    assert find_coco_json(folder) == folder / "instances.json"
    data = load_coco_folder(folder)
    np.testing.assert_allclose(data.gts[0].boxes, planted.boxes)
    res = run_detect_eval(
        [folder], tmp_path / "report", card=planted.card, backend="onnxruntime", plots=False
    )
    assert res.report["source"]["kind"] == "images+coco"
    # the planted model returns exactly the truth: AP and AP50 are 1 for each class that has objects
    per_class = res.report["unfiltered"]["coco"]["per_class"]
    for cls in set(planted.labels):
        assert per_class[cls]["AP50"] == pytest.approx(1.0) and per_class[cls]["AP"] > 0.99, per_class


def test_detect_only_writes_coco_results_and_a_bag_for_an_image_folder(sim: SimBag, tmp_path: Path) -> None:
    planted = planted_for_frame(tmp_path / "model", sim)
    folder = _folder(tmp_path, sim, planted.boxes, planted.labels)
    out = detect_only(folder, tmp_path / "out", card=planted.card, backend="onnxruntime", score_threshold=0.3)
    results = json.loads(out.results.read_text())
    images = json.loads(out.images.read_text())
    assert out.frames == 1 and images["images"][0]["file_name"] == "frame_0.png"
    assert [c["name"] for c in images["categories"]] == ["person", "car"]
    got = np.array([r["bbox"] for r in results])
    got = np.c_[got[:, :2], got[:, :2] + got[:, 2:]]
    order = np.argsort([-r["score"] for r in results])
    # the node's pipeline, its message round trip and COCO's pixel convention: the planted boxes back
    np.testing.assert_allclose(got[order], planted.boxes, atol=0.01)
    names = [images["categories"][results[i]["category_id"] - 1]["name"] for i in order]
    assert names == planted.labels
    assert (out.bag / "metadata.yaml").is_file()


def test_a_recording_without_ground_truth_is_refused_with_the_detect_only_hint(
    sim: SimBag, tmp_path: Path
) -> None:
    with pytest.raises(EvalInputError, match=r"no topic /nope.*--detect-only"):
        run_detect_eval([sim.path], tmp_path / "r", gt_topic="/nope", backend="onnxruntime", plots=False)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "perception_pkg.cli.main",
            "eval",
            "detect",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "--detect-only" in proc.stderr and "Traceback" not in proc.stderr
