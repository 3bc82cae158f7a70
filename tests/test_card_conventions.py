"""Preprocessing and decoding conventions are card fields (issue 15): letterbox rounding, anchor, pad
value and inverse; the top-down crop convention, aspect expansion and padding; the heatmap alignment and
quarter-shift rule. Defaults follow the common upstream exporters; the shipped cards spell out the old
behaviour and decode exactly what they decoded before the fields existed."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_pkg.cards import CardError, load_card, parse_card
from perception_pkg.decoders import build_decoder
from perception_pkg.decoders.pose.heatmap_argmax import argmax_decode
from perception_pkg.paths import models_dir
from perception_pkg.preprocess import Preprocessor, letterbox, letterbox_transform, topdown_transform
from perception_pkg.preprocess.geometry import topdown_crops

FIXTURES = Path(__file__).with_name("fixtures")
sys.path.insert(0, str(FIXTURES))
import make_card_conventions_golden as golden  # noqa: E402

GOLDEN = FIXTURES / "card_conventions_golden.npz"


def _card(resize: dict[str, Any], shape: tuple[int, ...] = (1, 3, 640, 640), **extra: Any) -> dict[str, Any]:
    return {
        "name": "c",
        "inputs": [{"name": "images", "shape": list(shape), "resize": resize}],
        "outputs": [{"name": "y"}],
        **extra,
    }


# -- the shipped cards: same figures as before the conventions were fields --------------------------------


def _golden_available() -> None:
    if not GOLDEN.is_file() or not (models_dir() / "sim_pose").is_dir():
        pytest.skip("needs the shipped models and tests/fixtures/card_conventions_golden.npz")


@pytest.mark.parametrize("rel", golden.SHIPPED)
def test_shipped_card_decodes_as_before_the_conventions_were_card_fields(rel: str) -> None:
    """Golden file recorded with the code of commit c072c4c (before this change) on a fixed 437x611
    image whose letterbox size differs between round (275 rows) and floor (274). Maps and input tensors
    must be bit-identical; decoded values within 1e-4 (onnxruntime's last bits may differ between CPUs;
    a convention change moves them by 0.25 px or more)."""
    _golden_available()
    pytest.importorskip("onnxruntime")
    recorded = json.loads(GOLDEN.with_suffix(".json").read_text())[rel]
    if load_card(models_dir() / rel, check_onnx=False, check_decoder=False).sha256 != recorded:
        pytest.skip(f"{rel}: its model was replaced after the golden file was recorded")
    before = dict(np.load(GOLDEN))
    key = rel.replace("/", "__").removesuffix(".yaml")
    now = golden.decode_card(rel, golden.fixed_image())
    assert sorted(now) == sorted(k for k in before if k.startswith(key + "__"))
    if rel == "sim_detector/card.yaml":
        assert len(before[f"{key}__boxes"]) > 0  # the fixed input gives detections to compare
    for name, value in now.items():
        if name.endswith(("__transform", "__tensor_sum")):
            np.testing.assert_array_equal(np.asarray(value), before[name], err_msg=name)
        else:
            np.testing.assert_allclose(np.asarray(value), before[name], rtol=0, atol=1e-4, err_msg=name)


def test_the_golden_file_covers_every_shipped_detector_and_pose_card() -> None:
    _golden_available()
    keys = {k.rsplit("__", 1)[0] for k in np.load(GOLDEN).files}
    shipped = {"sim_detector__card", "sim_detector__pose_card"} | {
        f"sim_pose__{p.stem}" for p in (models_dir() / "sim_pose").glob("card*.yaml")
    }
    assert keys == shipped


@pytest.mark.parametrize(
    ("rel", "section", "key"),
    [
        ("sim_detector/card.yaml", "resize", "inverse"),
        ("sim_pose/card_64x48_argmax.yaml", "resize", "crop"),
        ("sim_pose/card_64x48_argmax.yaml", "params", "alignment"),
        ("sim_pose/card_64x48_argmax.yaml", "params", "refine_rule"),
        ("sim_pose/card_128x96_integral.yaml", "params", "alignment"),
    ],
)
def test_the_explicit_fields_in_shipped_cards_are_needed(rel: str, section: str, key: str) -> None:
    """Dropping a field the migration wrote makes the card decode differently (the default differs)."""
    _golden_available()
    path = models_dir() / rel
    data = yaml.safe_load(path.read_text())
    stripped = copy.deepcopy(data)
    target = stripped["inputs"][0]["resize"] if section == "resize" else stripped["decoder"]["params"]
    del target[key]
    cards = [parse_card(d, base_dir=path.parent) for d in (data, stripped)]
    image = golden.fixed_image()
    if section == "resize":
        topdown = cards[0].image_input.resize.policy == "topdown"
        boxes = golden.PEOPLE if topdown else None
        maps = [Preprocessor.from_card(c)(image, boxes).transform.matrix for c in cards]
        assert np.abs(maps[0] - maps[1]).max() > 1e-3
        return
    rng = np.random.default_rng(0)
    shape = [2 if isinstance(d, str) else d for d in cards[0].outputs[0].shape]
    outputs = {o.name: rng.normal(size=shape).astype(np.float32) for o in cards[0].outputs}
    outputs["integral"] = outputs["integral"] * 20  # integral logits span tens of nats
    hm = outputs["heatmaps"]
    hm[..., 1, :] = hm.max() + 1  # peaks in row 1: the upstream quarter-shift rule skips them
    xy = [build_decoder(c)(outputs).xy for c in cards]
    assert np.abs(xy[0] - xy[1]).max() >= 0.25 - 1e-9


# -- letterbox ------------------------------------------------------------------------------------------


def test_letterbox_rounding_floor_is_yolox_and_round_is_ultralytics() -> None:
    """The issue's case: 429 rows at r = 0.65 -> YOLOX int() gives 278, round() 279."""
    src, dst = (429, 640), (640, 416)
    _, size_round, _ = letterbox_transform(src, dst, "top_left", "round")
    _, size_floor, _ = letterbox_transform(src, dst, "top_left", "floor")
    assert size_round == (279, 416) and size_floor == (278, 416)


def _yolox_preproc(img: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """YOLOX ``data_augment.preproc`` (its published code, condensed)."""
    padded = np.ones((size[0], size[1], 3), dtype=np.uint8) * 114
    r = min(size[0] / img.shape[0], size[1] / img.shape[1])
    resized = cv2.resize(img, (int(img.shape[1] * r), int(img.shape[0] * r)), interpolation=cv2.INTER_LINEAR)
    padded[: int(img.shape[0] * r), : int(img.shape[1] * r)] = resized
    return padded, r


def _ultralytics_letterbox(img: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Ultralytics ``LetterBox`` (auto=False, scaleup=True, center=True), condensed."""
    h, w = img.shape[:2]
    r = min(size[0] / h, size[1] / w)
    new_unpad = round(w * r), round(h * r)
    dw, dh = (size[1] - new_unpad[0]) / 2, (size[0] - new_unpad[1]) / 2
    if (w, h) != new_unpad:
        img = cv2.resize(img, new_unpad, interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    return cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114)), r


@pytest.mark.parametrize("hw", [(429, 640), (437, 611), (480, 640), (333, 777), (1080, 1920), (641, 480)])
def test_default_letterbox_is_pixel_identical_to_ultralytics_and_floor_top_left_to_yolox(
    hw: tuple[int, int],
) -> None:
    img = np.random.default_rng(hw[0]).integers(0, 256, (*hw, 3), dtype=np.uint8)
    default = parse_card(_card({"policy": "letterbox"})).image_input.resize
    ours, _ = letterbox(img, (640, 640), default.pad_value, default.anchor, "linear", default.rounding)
    ref, _ = _ultralytics_letterbox(img, (640, 640))
    np.testing.assert_array_equal(ours, ref)
    ours, t = letterbox(img, (640, 640), 114, "top_left", "linear", "floor", "ratio")
    ref, r = _yolox_preproc(img, (640, 640))
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_allclose(t.matrix, [[r, 0, 0], [0, r, 0]], atol=1e-15)  # YOLOX: boxes /= r


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 4000), w=st.integers(1, 4000), dh=st.integers(32, 1280), dw=st.integers(32, 1280))
def test_ratio_inverse_recomputes_the_padding_as_ultralytics_scale_boxes(
    h: int, w: int, dh: int, dw: int
) -> None:
    size = (dh, dw)
    t, _, _ = letterbox_transform((h, w), size, "center", "round", "ratio")
    gain = min(size[0] / h, size[1] / w)
    pad = round((size[1] - w * gain) / 2 - 0.1), round((size[0] - h * gain) / 2 - 0.1)
    np.testing.assert_allclose(t.matrix, [[gain, 0, pad[0]], [0, gain, pad[1]]], atol=1e-12)


def test_exact_inverse_is_the_map_the_resize_applied() -> None:
    t, (nh, nw), (top, left) = letterbox_transform((437, 611), (288, 384), "center", "floor", "exact")
    np.testing.assert_allclose(t.apply_points([[0, 0], [611, 437]]), [[left, top], [left + nw, top + nh]])


# -- top-down crops ---------------------------------------------------------------------------------------


def _mmpose_warp(box: np.ndarray, size_wh: tuple[int, int], padding: float = 1.25) -> np.ndarray:
    """mmpose 1.x ``bbox_xyxy2cs`` + ``_fix_aspect_ratio`` + ``get_warp_matrix`` (rot 0), condensed."""
    center = (box[:2] + box[2:]) * 0.5
    scale = (box[2:] - box[:2]) * padding
    w, h = scale
    ar = size_wh[0] / size_wh[1]
    scale = np.array([w, w / ar]) if w > h * ar else np.array([h * ar, h])
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center + np.array([scale[0] * -0.5, 0.0])
    dst[0] = [size_wh[0] * 0.5, size_wh[1] * 0.5]
    dst[1] = dst[0] + np.array([size_wh[0] * -0.5, 0.0])
    for pts in (src, dst):
        d = pts[0] - pts[1]
        pts[2] = pts[1] + np.r_[-d[1], d[0]]
    return cv2.getAffineTransform(src, dst)


BOXES = np.array([[100.3, 60.7, 171.9, 301.2], [350.0, 120.5, 389.25, 240.0], [10.0, 20.0, 610.5, 100.0]])


def test_default_topdown_crop_is_mmposes_warp_matrix_and_pixels() -> None:
    img = golden.fixed_image()
    card = parse_card(_card({"policy": "topdown"}, shape=(1, 3, 256, 192)))
    prepared = Preprocessor.from_card(card)(img, BOXES)
    for i, box in enumerate(BOXES):
        m = _mmpose_warp(box, (192, 256))
        np.testing.assert_allclose(prepared.transform[i].cv_matrix(), m, atol=1e-9)
        ref = cv2.warpAffine(img, m, (192, 256), flags=cv2.INTER_LINEAR)
        crop = prepared.tensor[i].transpose(1, 2, 0)[..., ::-1] * 255.0  # back to BGR 0-255
        np.testing.assert_allclose(crop, ref, atol=1e-3)


@settings(max_examples=100, deadline=None)
@given(
    corner=st.tuples(st.floats(-200, 800), st.floats(-200, 800)),
    size=st.tuples(st.floats(4, 600), st.floats(4, 600)),
    padding=st.floats(1.0, 2.0),
)
def test_default_crop_matrix_is_mmposes_for_any_box(
    corner: tuple[float, float], size: tuple[float, float], padding: float
) -> None:
    box = np.array([*corner, corner[0] + size[0], corner[1] + size[1]])
    t = topdown_transform(box[None], (256, 192), None, padding, "cv2")[0]
    np.testing.assert_allclose(t.cv_matrix(), _mmpose_warp(box, (192, 256), padding), rtol=1e-7, atol=1e-6)


def test_cv2_and_exact_crops_differ_by_half_a_pixel_minus_half_a_scaled_pixel() -> None:
    exact = topdown_transform(BOXES, (256, 192), None, 1.25, "exact")
    cv = topdown_transform(BOXES, (256, 192), None, 1.25, "cv2")
    s = exact.scale_factors()  # crop pixels per image pixel
    np.testing.assert_allclose(cv.matrix[..., :2], exact.matrix[..., :2], rtol=1e-6, atol=1e-12)
    centre = (BOXES[:, :2] + BOXES[:, 2:]) / 2
    shift = cv.apply_points(centre[:, None])[:, 0] - exact.apply_points(centre[:, None])[:, 0]
    np.testing.assert_allclose(shift, 0.5 * (1 - s), atol=1e-4)


def test_stretch_aspect_maps_the_padded_box_onto_the_crop_on_each_axis() -> None:
    t = topdown_transform(BOXES[:1], (256, 192), None, 1.0, "exact", "stretch")[0]
    np.testing.assert_allclose(t.apply_points(BOXES[0].reshape(2, 2)), [[0, 0], [192, 256]], atol=1e-9)
    cv = topdown_transform(BOXES[:1], (256, 192), None, 1.0, "cv2", "stretch")[0]
    # the box corners, taken as pixel centres, land on crop pixel centres 0 and (192, 256)
    m = cv.cv_matrix()
    np.testing.assert_allclose(m[:, :2] @ BOXES[0, 2:] + m[:, 2], [192, 256], atol=1e-3)


@pytest.mark.parametrize("crop", ["cv2", "exact"])
def test_a_frame_without_people_gives_an_empty_batch(crop: str) -> None:
    img = golden.fixed_image()
    crops, t = topdown_crops(img, np.zeros((0, 4)), (64, 48), None, 1.25, 0.0, "linear", crop)
    assert crops.shape == (0, 64, 48, 3) and t.matrix.shape == (0, 2, 3)


@pytest.mark.parametrize("crop", ["cv2", "exact"])
def test_a_zero_size_box_gives_an_invertible_map(crop: str) -> None:
    t = topdown_transform(np.array([[50.0, 50.0, 50.0, 50.0], [1e4, 1e4, 1e4, 1e4]]), (64, 48), crop=crop)
    back = t.inverse().apply_points(np.full((2, 1, 2), 10.0))
    assert np.isfinite(back).all()


def test_padding_and_aspect_ratio_fields_reach_the_crop() -> None:
    crops, t = topdown_crops(golden.fixed_image(), BOXES[:1], (64, 48), 0.5, 1.5, 0.0, "linear", "cv2")
    width = 1.0 / t.scale_factors()[0, 0] * 48  # image pixels across the crop
    bw, bh = BOXES[0, 2:] - BOXES[0, :2]
    assert width == pytest.approx(max(bw, bh * 0.5) * 1.5, rel=1e-6)
    assert crops.shape == (1, 64, 48, 3)


# -- schema ----------------------------------------------------------------------------------------------


def test_defaults_are_the_upstream_conventions() -> None:
    lb = parse_card(_card({"policy": "letterbox"})).image_input.resize
    assert (lb.rounding, lb.anchor, lb.pad_value, lb.inverse) == ("round", "center", 114.0, "ratio")
    td = parse_card(_card({"policy": "topdown"})).image_input.resize
    assert (td.crop, td.aspect, td.padding, td.pad_value) == ("cv2", "expand", 1.25, 0.0)


@pytest.mark.parametrize(
    ("resize", "field", "words"),
    [
        ({"policy": "letterbox", "rounding": "ceil"}, "inputs[0].resize.rounding", "round, floor"),
        ({"policy": "letterbox", "inverse": "nope"}, "inputs[0].resize.inverse", "ratio, exact"),
        ({"policy": "topdown", "crop": "mmpose"}, "inputs[0].resize.crop", "cv2, exact"),
        ({"policy": "topdown", "aspect": "keep"}, "inputs[0].resize.aspect", "expand, stretch"),
        ({"policy": "topdown", "rounding": "floor"}, "inputs[0].resize.rounding", "letterbox only"),
        ({"policy": "stretch", "anchor": "top_left"}, "inputs[0].resize.anchor", "letterbox only"),
        ({"policy": "letterbox", "crop": "cv2"}, "inputs[0].resize.crop", "topdown only"),
    ],
)
def test_a_wrong_convention_field_is_a_card_error_naming_it(
    resize: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(CardError) as info:
        parse_card(_card(resize))
    assert info.value.field == field
    assert words in str(info.value)


# -- decoder conventions --------------------------------------------------------------------------------


def test_heatmap_decoders_default_to_legacy_alignment() -> None:
    base = _card({"policy": "topdown"}, shape=(1, 3, 256, 192), keypoints=["a"])
    base["outputs"] = [{"name": "y", "shape": [1, 1, 64, 48]}]
    for dtype in ("heatmap_argmax", "integral"):
        card = parse_card({**base, "decoder": {"type": dtype}})
        assert build_decoder(card).alignment == "legacy"
    hm = np.zeros((1, 1, 64, 48), np.float32)
    hm[0, 0, 10, 20] = 1.0
    card = parse_card({**base, "decoder": {"type": "heatmap_argmax"}})
    np.testing.assert_allclose(build_decoder(card)({"y": hm}).xy, [[[20 * 4 + 0.5, 10 * 4 + 0.5]]])


@pytest.mark.parametrize(
    ("rule", "expected"),
    [("inner", [[1.25, 5.25], [5.25, 1.25]]), ("mmpose", [[1.0, 5.25], [5.25, 1.0]]),
     ("msra", [[1.0, 5.0], [5.0, 1.0]])],
)  # fmt: skip
def test_quarter_shift_rules_follow_each_upstream(rule: str, expected: list[list[float]]) -> None:
    """Peaks at column 1 / row 1 with higher right and lower neighbours: only 'inner' shifts on that axis;
    'msra' then also leaves the other axis alone (both-or-neither)."""
    hm = np.zeros((1, 2, 10, 10))
    for k, (x, y) in enumerate([(1, 5), (5, 1)]):
        hm[0, k, y, x] = 1.0
        hm[0, k, y, x + 1] = 0.5
        hm[0, k, y + 1, x] = 0.5
    xy, _ = argmax_decode(hm, "quarter", rule)
    np.testing.assert_allclose(xy[0], expected)


def test_shipped_cards_load_with_their_conventions() -> None:
    _golden_available()
    card = load_card(models_dir() / "sim_pose" / "card_64x48_argmax.yaml")
    assert card.image_input.resize.crop == "exact"
    assert card.decoder.params["alignment"] == "cell"
