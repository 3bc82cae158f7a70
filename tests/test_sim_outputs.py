"""Simulator outputs: the rosbag2 (read back by rosbags and by the mcap reader), datasets, CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("open3d")

from perception_pkg.bag import get_typestore
from perception_pkg.cli.main import main as cli_main
from perception_pkg.sim import (
    Renderer,
    SceneConfig,
    generate,
    generate_scene,
    load_completion_pair,
)

WEATHER = ("fog", "night")
SMALL = {"width": 320, "height": 240, "azimuth_steps": 600}


def _config(frames: int) -> SceneConfig:
    # a short street keeps the dataset's complete-shape sampling cheap
    return SceneConfig.with_sensors(**SMALL, frames=frames, people_per_100m=8.0, oncoming_cars_per_100m=1.0)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    result = generate(
        out,
        21,
        2,
        config=_config(2),
        weather=WEATHER,
        severities=(2,),
        bag_severity=2,
        contact_sheet=out / "s.png",
    )
    scene = generate_scene(21, _config(2))
    renderer = Renderer(scene)
    frames = [renderer.render(i) for i in range(2)]
    return out, result, scene, frames


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_bag_reads_back_with_rosbags_with_one_stamp_per_frame(outputs):
    from rosbags.rosbag2 import Reader

    from perception_pkg.msgs import image_to_rgb, pointcloud_to_xyz

    _out, result, scene, frames = outputs
    ts = get_typestore()
    stamps: dict[str, list[int]] = {}
    with Reader(result.bag) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        for conn, t, raw in reader.messages():
            msg = ts.deserialize_cdr(raw, conn.msgtype)
            stamp = msg.transforms[0].header.stamp if conn.topic.startswith("/tf") else msg.header.stamp
            stamp_ns = stamp.sec * 1_000_000_000 + stamp.nanosec
            assert stamp_ns == t  # log time = header stamp
            stamps.setdefault(conn.topic, []).append(t)
            frame = frames[(t - scene.config.start_stamp_ns) // 100_000_000]
            if conn.topic == "/camera/image_raw":
                assert np.array_equal(image_to_rgb(msg), frame.image)
            elif conn.topic == "/lidar/points":
                cloud = pointcloud_to_xyz(msg, with_intensity=True)
                assert np.array_equal(cloud, frame.points)
            elif conn.topic == "/ground_truth/people":
                want = [o for o in frame.objects if o.keypoints is not None and o.visible_pixels >= 20]
                assert len(msg.people) == len(want) > 0
                for person, o in zip(msg.people, want, strict=True):
                    v = np.array([k.score for k in person.keypoints]) * 2
                    assert np.array_equal(v, o.keypoints[:, 2])
                    seen = o.keypoints[:, 2] > 0
                    xy = np.array([[k.x, k.y] for k in person.keypoints])
                    assert np.allclose(xy[seen], o.keypoints[seen, :2], atol=1e-4)
            elif conn.topic == "/ground_truth/detections_3d":
                assert msg.header.frame_id == "camera_optical"
                for det in msg.detections:
                    o = frame.object(int(det.id))
                    c = det.bbox.center.position
                    assert [c.x, c.y, c.z] == pytest.approx(o.box3d_camera.centre.tolist())
                    assert det.results[0].hypothesis.class_id == o.cls
    expected = {
        "/camera/image_raw", "/camera/camera_info", "/lidar/points", "/ground_truth/detections_2d",
        "/ground_truth/detections_3d", "/ground_truth/detections_3d_lidar", "/ground_truth/people", "/tf",
        "/tf_static", "/camera/fog/image_raw", "/camera/fog/camera_info", "/camera/night/image_raw",
        "/camera/night/camera_info",
    }  # fmt: skip
    assert set(topics) == expected
    assert topics["/ground_truth/people"] == "perception_msgs/msg/PersonArray"
    frame_stamps = [f.stamp_ns for f in frames]
    for topic, ts_list in stamps.items():
        assert ts_list == (frame_stamps[:1] if topic == "/tf_static" else frame_stamps), topic


def test_bag_decodes_with_the_mcap_reader(outputs):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    _, result, _, _ = outputs
    (mcap_file,) = result.bag.glob("*.mcap")
    counts: dict[str, int] = {}
    with mcap_file.open("rb") as f:
        # decodes from the schemas stored in the file: no typestore, no ROS install
        decoded = list(make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages())
    for _, channel, _, msg in decoded:
        counts[channel.topic] = counts.get(channel.topic, 0) + 1
        if channel.topic == "/ground_truth/detections_2d":
            assert len(msg.detections) > 0
            assert msg.detections[0].results[0].hypothesis.class_id in ("person", "car")
        if channel.topic == "/camera/camera_info":
            assert list(msg.k) == pytest.approx(_config(2).rig.camera.K.ravel().tolist())
    assert counts["/camera/image_raw"] == 2 and counts["/tf_static"] == 1
    assert len(counts) == 13


def test_same_seed_gives_identical_bytes(outputs, tmp_path):
    out, _, _, _ = outputs
    again = tmp_path / "again"
    generate(
        again,
        21,
        2,
        config=_config(2),
        weather=WEATHER,
        severities=(2,),
        bag_severity=2,
        contact_sheet=again / "s.png",
    )
    first, second = _hashes(out), _hashes(again)
    assert first == second
    assert any(k.endswith(".mcap") for k in first) and any(k.endswith(".npz") for k in first)


def test_coco_files_load_with_pycocotools(outputs):
    from pycocotools.coco import COCO

    out, _, _, frames = outputs
    det = COCO(str(out / "dataset" / "annotations" / "detection.json"))
    kps = COCO(str(out / "dataset" / "annotations" / "keypoints.json"))
    assert sorted(c["name"] for c in det.loadCats(det.getCatIds())) == ["car", "person"]
    assert len(det.getImgIds()) == 2
    for ann in kps.loadAnns(kps.getAnnIds()):
        assert len(ann["keypoints"]) == 51
        o = frames[ann["image_id"] - 1].object(ann["track_id"])
        v = np.array(ann["keypoints"][2::3])
        assert np.array_equal(v, o.keypoints[:, 2]) and ann["num_keypoints"] == int((v > 0).sum())
        x0, y0, x1, y1 = o.box2d
        assert ann["bbox"] == pytest.approx([x0 + 0.5, y0 + 0.5, x1 - x0, y1 - y0])
    assert kps.getAnnIds()


def test_dataset_pairs_weather_images_and_completion_data(outputs):
    import cv2

    out, _, _scene, frames = outputs
    ds = out / "dataset"
    manifest = json.loads((ds / "dataset.json").read_text())
    clean = sorted(p.name for p in (ds / "images" / "clean").iterdir())
    for kind in WEATHER:
        assert sorted(p.name for p in (ds / "images" / f"{kind}_s2").iterdir()) == clean
    img = cv2.imread(str(ds / "images" / "clean" / "000001.png"))[..., ::-1]
    assert np.array_equal(img, frames[1].image)
    depth = cv2.imread(str(ds / "depth" / "000001.png"), cv2.IMREAD_UNCHANGED)
    finite = np.isfinite(frames[1].depth) & (frames[1].depth < 60)
    assert np.abs(depth[finite] / 1000.0 - frames[1].depth[finite]).max() <= 0.0005 + 1e-6
    assert manifest["object_files"]
    pair = load_completion_pair(ds, manifest["object_files"][0], n=2048)
    frame = frames[int(pair["frame_index"])]
    o = frame.object(int(pair["object_id"]))
    assert np.array_equal(pair["partial"], frame.points[o.lidar_index])
    assert pair["complete"].shape == (2048, 3)
    # the complete shape sits where the partial scan is: inside the same box
    local = (pair["complete"] - o.box3d_lidar.centre) @ o.box3d_lidar.rotation
    assert np.all(np.abs(local) <= o.box3d_lidar.size / 2 + 1e-4)


def test_contact_sheet_is_written(outputs):
    import cv2

    _out, result, _, _ = outputs
    sheet = cv2.imread(str(result.contact_sheet))
    assert sheet is not None and sheet.shape[1] == 320 + 320 + 240 and sheet.shape[0] > 2 * 240


def test_cli_writes_what_it_is_asked_for(tmp_path, capsys):
    rc = cli_main(
        ["sim", "--seed", "3", "--frames", "1", "--out", str(tmp_path), "--bag", "--weather", "rain",
         "--width", "160", "--height", "120", "--azimuth-steps", "300"]
    )  # fmt: skip
    assert rc == 0
    assert (tmp_path / "bag" / "metadata.yaml").is_file() and not (tmp_path / "dataset").exists()
    assert "1 frames" in capsys.readouterr().out
    # refuses to overwrite without --force, refuses unknown weather
    assert cli_main(["sim", "--frames", "1", "--out", str(tmp_path), "--bag"]) == 2
    assert cli_main(["sim", "--frames", "1", "--out", str(tmp_path / "x"), "--weather", "hail"]) == 2


def test_cli_force_never_replaces_a_folder_it_did_not_write(tmp_path):
    theirs = tmp_path / "bag"
    theirs.mkdir()
    (theirs / "metadata.yaml").write_text("someone else's bag\n")
    args = ["sim", "--frames", "1", "--out", str(tmp_path), "--bag", "--force", "--width", "160",
            "--height", "120", "--azimuth-steps", "300"]  # fmt: skip
    assert cli_main(args) == 2
    assert (theirs / "metadata.yaml").read_text() == "someone else's bag\n"
    # our own earlier output (the marker names it) is replaced with --force
    other = tmp_path / "ours"
    assert cli_main([*args[:4], str(other), *args[5:]]) == 0
    first = (other / "bag" / "metadata.yaml").stat().st_mtime_ns
    assert cli_main([*args[:4], str(other), *args[5:]]) == 0
    assert (other / "bag" / "metadata.yaml").stat().st_mtime_ns != first
    assert cli_main([*args[:4], str(tmp_path / "bag" / "metadata.yaml"), *args[5:]]) == 2  # a file


def test_sample_bag_is_built_once_and_reused(tmp_path):
    from rosbags.rosbag2 import Reader

    from perception_pkg.sim import ensure_sample_bag
    from perception_pkg.sim.generate import SAMPLE_FRAMES, SAMPLE_WEATHER, source_key

    path = ensure_sample_bag(tmp_path / "sample")
    mcap = next(path.glob("*.mcap"))
    stamp = mcap.stat().st_mtime_ns
    assert ensure_sample_bag(tmp_path / "sample") == path and mcap.stat().st_mtime_ns == stamp
    assert not list(tmp_path.glob(".sample.tmp*"))  # no temporary left behind
    with Reader(path) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts["/camera/image_raw"] == SAMPLE_FRAMES == counts["/lidar/points"]
    assert all(counts[f"/camera/{k}/image_raw"] == SAMPLE_FRAMES for k in SAMPLE_WEATHER)
    # a bag made by other simulator code (another source hash) is rebuilt, identically
    meta = path / "metadata.yaml"
    meta.write_text(meta.read_text().replace(source_key(), "0" * 16))
    before = hashlib.sha256(mcap.read_bytes()).hexdigest()
    assert ensure_sample_bag(tmp_path / "sample") == path
    assert source_key() in meta.read_text()
    assert hashlib.sha256(next(path.glob("*.mcap")).read_bytes()).hexdigest() == before
