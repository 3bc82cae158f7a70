"""INT8 calibration data: folder and rosbag sources, preprocessed into fixed-size batches as the card says."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from perception_pkg.cards import parse_card
from perception_pkg.engines.calibration import CalibrationBatches, images_from_bag, images_from_folder


def _card() -> object:
    return parse_card(
        {
            "name": "cal",
            "inputs": [
                {
                    "name": "images",
                    "shape": ["batch", 3, 32, 48],
                    "dynamic": {"batch": [1, 2, 4]},
                    "scale": "1/255",
                    "resize": {"policy": "letterbox", "pad_value": 0},
                }
            ],
            "outputs": [{"name": "y"}],
        }
    )


def _frames(n: int) -> list[np.ndarray]:
    return [np.full((60, 80, 3), 20 * i, dtype=np.uint8) for i in range(n)]


def test_folder_source_reads_sorted_images_and_skips_unreadable(tmp_path: Path) -> None:
    for i, frame in enumerate(_frames(3)):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), frame)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    images = list(images_from_folder(tmp_path))
    assert [int(im[0, 0, 0]) for im in images] == [0, 20, 40]
    assert len(list(images_from_folder(tmp_path, limit=2))) == 2


def test_folder_source_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        list(images_from_folder(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="no images"):
        list(images_from_folder(tmp_path))


def test_batches_have_the_card_layout_and_drop_the_partial_tail() -> None:
    batches = CalibrationBatches(_card(), _frames(7), batch_size=3)
    out = list(batches)
    assert [b.shape for b in out] == [(3, 3, 32, 48)] * 2
    assert out[0].dtype == np.float32 and out[0].flags.c_contiguous
    assert batches.dropped == 1
    # frame 4 (value 80) letterboxed 80x60 -> 43x32 centred: an image pixel holds 80/255, the pad 0
    assert out[1][1, 0, 16, 24] == pytest.approx(80 / 255)
    assert out[1][1, 0, 16, 1] == 0.0


def test_too_few_images_for_one_batch_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least 4 images, got 2"):
        list(CalibrationBatches(_card(), _frames(2), batch_size=4))


def test_rosbag_topic_source_yields_bgr_frames(tmp_path: Path) -> None:
    rosbags = pytest.importorskip("rosbags")
    try:
        from perception_pkg.msgs import MessageFactory, array_to_image, make_header
    except ImportError as exc:
        pytest.skip(f"perception_pkg.msgs not available: {exc}")
    from rosbags.rosbag2 import Writer

    from perception_pkg.bag import get_typestore

    del rosbags
    store = get_typestore()
    types = MessageFactory.rosbags(store)
    bag = tmp_path / "bag"
    frames = _frames(3)
    with Writer(bag, version=8) as writer:
        conn = writer.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=store)
        other = writer.add_connection("/other", "std_msgs/msg/String", typestore=store)
        for i, frame in enumerate(frames):
            rgb = np.ascontiguousarray(frame[..., ::-1])
            rgb[0, 0] = (i, 100, 200)  # R, G, B: checks the channel order on the way back
            msg = array_to_image(rgb, "rgb8", make_header(types, i * 1000, "cam"), types)
            writer.write(conn, i * 1000, store.serialize_cdr(msg, "sensor_msgs/msg/Image"))
        string = store.types["std_msgs/msg/String"](data="hi")
        writer.write(other, 5, store.serialize_cdr(string, "std_msgs/msg/String"))
    got = list(images_from_bag(bag, "/camera/image_raw"))
    assert len(got) == 3 and got[0].shape == (60, 80, 3)
    assert got[2][0, 0].tolist() == [200, 100, 2]  # B, G, R
    assert got[1][5, 5].tolist() == [20, 20, 20]
    assert len(list(images_from_bag(bag, "/camera/image_raw", limit=1))) == 1
    with pytest.raises(ValueError, match="not in"):
        list(images_from_bag(bag, "/nope"))
    with pytest.raises(ValueError, match="has type std_msgs/msg/String"):
        list(images_from_bag(bag, "/other"))
