"""Real images (COCO, adverse weather, KITTI with its calibration) through the detection replay path.

The shipped detector is trained on the simulator, so nothing here is an accuracy bar: the test checks that
real photographs of other sizes go through conversion, inference, decoding, the 3D solve and message
building, and give finite boxes inside the image, and 3D boxes in front of a KITTI camera.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from perception_pkg.datasets import kitti
from perception_pkg.detection import default_detector_card
from perception_pkg.msgs import (
    MessageFactory,
    array_to_image,
    detection2d_array_to_xyxy,
    detection3d_array_to_kitti,
    make_header,
    model_to_camera_info,
)
from perception_pkg.replay.routing import routed

pytestmark = pytest.mark.skipif(
    not default_detector_card().is_file(), reason="shipped detector card absent (models/sim_detector)"
)


@pytest.fixture(scope="module")
def pipeline():
    # a low threshold so that every image yields some boxes to check, even far from the training data
    return routed("detection", {"score_threshold": 0.05})


def _run(pipe, bgr: np.ndarray, stamp: int, camera=None) -> dict:
    types = MessageFactory.rosbags()
    header = make_header(types, stamp, "camera")
    out = []
    if camera is not None:
        out += pipe.on_message(pipe.topic("camera_info"), model_to_camera_info(camera, header, types), stamp)
    out += pipe.on_message(pipe.topic("image"), array_to_image(bgr, "bgr8", header, types), stamp)
    return dict(out + pipe.finish())


@pytest.mark.parametrize(
    "name",
    ["coco/000000000785.jpg", "coco/000000197388.jpg", "weather/fog_haze_test7.jpg",
     "weather/night_exdark_2015_00003.png", "weather/rain_raindrop_test_1.png"],
)  # fmt: skip
def test_real_photos_give_finite_boxes_inside_the_image(assets: Path, pipeline, name: str) -> None:
    bgr = cv2.imread(str(assets / name), cv2.IMREAD_COLOR)
    msgs = _run(pipeline, bgr, 1_700_000_000_000_000_000)
    boxes, scores, labels = detection2d_array_to_xyxy(msgs[pipeline.topic("detections_2d")])
    h, w = bgr.shape[:2]
    assert len(boxes) > 0
    assert np.isfinite(boxes).all() and ((scores > 0) & (scores <= 1)).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    assert (boxes[:, 2:] > boxes[:, :2]).all()
    assert set(labels) <= {"person", "car"}


@pytest.mark.parametrize("frame", ["000000", "000001"])
def test_kitti_frames_with_calibration_give_3d_boxes_in_front_of_the_camera(
    assets: Path, pipeline, frame: str
) -> None:
    root = assets / "kitti" / "training"
    bgr = cv2.imread(str(root / "image_2" / f"{frame}.png"), cv2.IMREAD_COLOR)
    camera = kitti.camera_model(root / "calib" / f"{frame}.txt", bgr.shape[:2])
    msgs = _run(pipeline, bgr, 1_700_000_000_100_000_000, camera)
    boxes, _, _ = detection2d_array_to_xyxy(msgs[pipeline.topic("detections_2d")])
    assert len(boxes) > 0 and np.isfinite(boxes).all()
    b3, _, _, ids = detection3d_array_to_kitti(msgs[pipeline.topic("detections_3d")])
    assert len(b3) > 0, "no 3D box from a KITTI frame with its P2"
    assert np.isfinite(b3).all() and (b3[:, 2] > 0).all() and (b3[:, 3:6] > 0).all()
    assert msgs[pipeline.topic("detections_3d")].header.frame_id == "camera"
    # each 3D box projects back near its own 2D box (same detection id)
    centre = (
        kitti.read_calib(root / "calib" / f"{frame}.txt")["P2"]
        @ np.c_[b3[:, 0], b3[:, 1] - b3[:, 3] / 2, b3[:, 2], np.ones(len(b3))].T
    )
    uv = (centre[:2] / centre[2]).T + 0.5  # stack pixel frame
    rows = np.array([int(i) for i in ids])
    inside = (uv[:, 0] >= boxes[rows, 0] - 20) & (uv[:, 0] <= boxes[rows, 2] + 20)
    assert inside.mean() >= 0.8
