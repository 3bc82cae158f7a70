"""pipelines/weather.py: pairing with CameraInfo by stamp, the gate's pass-through (the very message),
restored images with the input header and a matching CameraInfo, malformed input, settings; and replay
running weather in front of detection (detection sees the restored stream)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.weather import planted_weather_cards
from rosbags.highlevel import AnyReader

from perception_pkg.bag import BagWriter, get_typestore
from perception_pkg.geometry3d.camera import CameraModel
from perception_pkg.msgs import (
    MessageFactory,
    MessageFormatError,
    array_to_compressed,
    array_to_image,
    camera_info_to_model,
    image_to_bgr,
    make_header,
    model_to_camera_info,
    stamp_to_ns,
)
from perception_pkg.pipelines import PIPELINES
from perception_pkg.pipelines.weather import WeatherSettings, create
from perception_pkg.replay import replay_bag
from perception_pkg.runtime.settings import ConfigError

TYPES = MessageFactory.rosbags()
H, W = 48, 64
DARK = np.full((H, W, 3), 20, np.uint8)
BRIGHT = np.full((H, W, 3), 200, np.uint8)


@pytest.fixture(scope="module")
def cards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pytest.importorskip("torch")
    return planted_weather_cards(tmp_path_factory.mktemp("weather"))


def _camera(frame: str = "cam") -> CameraModel:
    K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
    return CameraModel(W, H, K, np.zeros(5), np.eye(3), np.hstack([K, np.zeros((3, 1))]), "plumb_bob", frame)


def _image(img: np.ndarray, stamp: int, encoding: str = "bgr8") -> object:
    px = img[..., ::-1] if encoding == "rgb8" else img
    return array_to_image(np.ascontiguousarray(px), encoding, make_header(TYPES, stamp, "cam"), TYPES)


def _info(stamp: int) -> object:
    return model_to_camera_info(_camera(), make_header(TYPES, stamp, "cam"), TYPES)


def _pipeline(cards: tuple[Path, Path], **kw: object):
    kw.setdefault("gate_conditions", ("fog", "night"))  # the planted classifier calls a dark frame night
    s = WeatherSettings(model_card=str(cards[0]), classifier_card=str(cards[1]), backend="onnxruntime", **kw)
    return create(s, TYPES, live=False)


def test_registered_with_settings_and_create() -> None:
    assert PIPELINES["weather"].settings is WeatherSettings
    assert PIPELINES["weather"].create is create
    assert WeatherSettings().gate_conditions == ("fog",)  # measured: restoring the others costs AP


def test_a_dark_frame_is_restored_with_its_header_and_a_matching_camera_info(
    cards: tuple[Path, Path],
) -> None:
    p = _pipeline(cards)
    stamp = 1_700_000_000_123_456_789
    assert p.accept("camera_info", _info(stamp), 0.0) == []
    out = dict(p.feed("image", _image(DARK, stamp, "rgb8"), 0.01))
    img, info = out["restored"], out["restored_camera_info"]
    assert stamp_to_ns(img.header) == stamp and img.header.frame_id == "cam"
    assert img.encoding == "rgb8" and (img.height, img.width) == (H, W)
    np.testing.assert_array_equal(image_to_bgr(img), 255 - DARK)  # the planted negative
    assert stamp_to_ns(info.header) == stamp and info.header.frame_id == "cam"
    cam = camera_info_to_model(info)
    assert (cam.width, cam.height) == (W, H) and np.allclose(cam.K, _camera().K)
    diag = dict(p.diagnostics())
    assert diag["restored"] == "1" and diag["passed"] == "0" and diag["last_condition"] == "night"
    assert "night=1" in diag["conditions"] and "restore=" in diag["last_timings_ms"]


def test_a_clear_frame_passes_as_the_very_message_in_auto_and_restored_in_always(
    cards: tuple[Path, Path],
) -> None:
    p = _pipeline(cards)
    p.accept("camera_info", _info(5), 0.0)
    msg = _image(BRIGHT, 5)
    out = dict(p.feed("image", msg, 0.0))
    assert out["restored"] is msg  # republished as it is
    assert dict(p.diagnostics())["passed"] == "1"
    always = _pipeline(cards, mode="always")
    always.accept("camera_info", _info(5), 0.0)
    np.testing.assert_array_equal(
        image_to_bgr(dict(always.feed("image", msg, 0.0))["restored"]), 255 - BRIGHT
    )
    off = _pipeline(cards, mode="off")
    off.accept("camera_info", _info(5), 0.0)
    assert dict(off.feed("image", _image(DARK, 5), 0.0))["restored"].data is not None
    assert dict(off.diagnostics())["passed"] == "1" and dict(off.diagnostics())["conditions"].count("=0") == 5


def test_an_image_waits_for_its_camera_info_then_uses_the_newest(cards: tuple[Path, Path]) -> None:
    p = _pipeline(cards, camera_info_wait_s=0.5)
    assert p.accept("image", _image(DARK, 10), 0.0) == []  # held for its CameraInfo
    jobs = p.accept("camera_info", _info(10), 0.1)
    assert len(jobs) == 1 and stamp_to_ns(jobs[0].msg.header) == 10
    assert p.accept("image", _image(DARK, 20), 1.0) == []  # no CameraInfo with stamp 20 ever comes
    assert p.poll(1.2) == []
    late = p.poll(1.6)
    assert len(late) == 1
    out = dict(p.run(late[0]))
    assert stamp_to_ns(out["restored_camera_info"].header) == 20  # the newest, re-stamped
    assert dict(p.diagnostics())["camera_info_late"] == "1"


def test_without_camera_info_only_the_image_is_published(cards: tuple[Path, Path]) -> None:
    p = _pipeline(cards)
    p.inputs_available({"image"})  # replay: the recording has no CameraInfo topic
    out = dict(p.feed("image", _image(DARK, 1), 0.0))
    assert set(out) == {"restored"} and dict(p.diagnostics())["no_camera_info"] == "1"


def test_compressed_input_and_malformed_images(cards: tuple[Path, Path]) -> None:
    p = _pipeline(cards, compressed=True)
    p.inputs_available({"image"})
    jpeg = array_to_compressed(BRIGHT, make_header(TYPES, 3, "cam"), TYPES, fmt="png")
    out = dict(p.feed("image", jpeg, 0.0))
    assert out["restored"].encoding == "bgr8"  # decoded even when passed through
    np.testing.assert_array_equal(image_to_bgr(out["restored"]), BRIGHT)
    raw = _pipeline(cards)
    bad = _image(DARK, 4)
    bad.data = bad.data[:100]
    with pytest.raises(MessageFormatError):
        raw.accept("image", bad, 0.0)


def test_settings_name_an_unknown_condition_or_card(cards: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"gate_conditions.*hail"):
        WeatherSettings(gate_conditions=("fog", "hail"))
    with pytest.raises(ConfigError, match=r"weather\.model_card"):
        create(
            WeatherSettings(model_card=str(tmp_path / "none.yaml"), backend="onnxruntime"), TYPES, live=False
        )
    with pytest.raises(ConfigError, match=r"weather\.classifier_card"):
        create(
            WeatherSettings(model_card="clahe", classifier_card=str(tmp_path / "x.yaml")), TYPES, live=False
        )
    baseline = create(
        WeatherSettings(
            model_card="gamma", mode="always", classifier_card=str(cards[1]), backend="onnxruntime"
        ),
        TYPES,
        live=False,
    )
    assert "baseline gamma" in baseline.describe()


def test_replay_runs_weather_in_front_of_detection_on_the_restored_stream(
    cards: tuple[Path, Path], tmp_path: Path
) -> None:
    """Detection, its image and CameraInfo topics remapped onto weather's outputs (which the recording does
    not have), detects on every restored frame."""
    from perception_pkg.detection import default_detector_card

    if not default_detector_card().is_file():
        pytest.skip("shipped detector not present")
    bag = tmp_path / "in"
    stamps = [1_000_000_000 + i * 100_000_000 for i in range(3)]
    with BagWriter(bag) as w:
        w.add_connection("/camera/image_raw", "sensor_msgs/msg/Image")
        w.add_connection("/camera/camera_info", "sensor_msgs/msg/CameraInfo")
        for i, s in enumerate(stamps):
            w.write("/camera/camera_info", s, _info(s))
            w.write("/camera/image_raw", s, _image(DARK if i != 1 else BRIGHT, s))
    params = tmp_path / "params.yaml"
    params.write_text(
        "weather:\n  ros__parameters:\n"
        f"    model_card: {cards[0]}\n    classifier_card: {cards[1]}\n    backend: onnxruntime\n"
        "    gate_conditions: [fog, night]\n"
        "detection:\n  ros__parameters:\n    image_topic: /camera_restored/image_raw\n"
        "    camera_info_topic: /camera_restored/camera_info\n    backend: onnxruntime\n    lift_3d: false\n"
    )
    res = replay_bag(bag, tmp_path / "out", ["weather", "detection"], params_file=params, progress=False)
    summary = res.summary["pipelines"]["weather"]
    assert summary["skipped_malformed"] == 0
    topics: dict[str, list] = {}
    with AnyReader([res.output_bag], default_typestore=get_typestore()) as reader:
        for conn, t, raw in reader.messages():
            topics.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype)))
    restored = topics["/camera_restored/image_raw"]
    assert [t for t, _ in restored] == stamps
    assert [stamp_to_ns(m.header) for _, m in restored] == stamps
    pixels = [int(image_to_bgr(m)[0, 0, 0]) for _, m in restored]
    assert pixels == [235, 200, 235]  # dark frames restored (negated), the bright one passed as it was
    assert [stamp_to_ns(m.header) for _, m in topics["/camera_restored/camera_info"]] == stamps
    assert [stamp_to_ns(m.header) for _, m in topics["/detection/detections_2d"]] == stamps
    assert res.summary["pipelines"]["detection"]["messages"] == 2 * len(stamps)  # restored images + infos
