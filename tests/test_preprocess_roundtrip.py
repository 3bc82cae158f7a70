"""Preprocessing: every resize policy's map is what OpenCV actually sampled, and its inverse is exact."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from perception_pkg.cards import parse_card
from perception_pkg.preprocess import (
    AffineTransform,
    Normalizer,
    Preprocessor,
    from_layout,
    letterbox,
    letterbox_transform,
    stretch,
    to_layout,
    topdown_crops,
    topdown_transform,
    unwarp_image,
)

sizes = st.integers(min_value=24, max_value=400)
fast = settings(max_examples=40, deadline=None)


def _ramp(h: int, w: int) -> np.ndarray:
    """Float image whose channels hold each pixel centre's own x and y (OpenCV convention) and 1.

    Bilinear sampling reproduces linear functions exactly, so after any resize or warp, a destination
    pixel holds the source coordinate it was sampled from: the ground truth for the geometric map.
    """
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.dstack([xs, ys, np.ones_like(xs)])


def _check_sampled(
    out: np.ndarray, transform: AffineTransform, src_hw: tuple[int, int], margin: int = 2, tol: float = 2e-3
) -> None:
    """Interior destination pixels must hold the source point the transform's inverse predicts.

    Points beyond the outermost source pixel centres are excluded: OpenCV clamps there (edge replicate).
    """
    h, w = out.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    centres = np.stack([xs + 0.5, ys + 0.5], axis=-1).astype(np.float64)  # our edge convention
    src = transform.inverse().apply_points(centres) - 0.5  # back to OpenCV's centre convention
    inside = out[..., 2] > 0.999  # fully inside the source image (no border blending)
    inside &= (
        (src[..., 0] >= 0)
        & (src[..., 0] <= src_hw[1] - 1)
        & (src[..., 1] >= 0)
        & (src[..., 1] <= src_hw[0] - 1)
    )
    inside[:margin] = inside[-margin:] = False
    inside[:, :margin] = inside[:, -margin:] = False
    assert inside.sum() > 0
    np.testing.assert_allclose(out[..., :2][inside], src[inside], atol=tol)


@fast
@given(h=sizes, w=sizes, dh=sizes, dw=sizes, anchor=st.sampled_from(["center", "top_left"]))
def test_letterbox_map_matches_opencv_sampling(h: int, w: int, dh: int, dw: int, anchor: str) -> None:
    assume(min(letterbox_transform((h, w), (dh, dw))[1]) >= 8)  # leave an interior to check
    out, t = letterbox(_ramp(h, w), (dh, dw), pad_value=0.0, anchor=anchor)
    assert out.shape == (dh, dw, 3)
    _check_sampled(out, t, (h, w), tol=2e-3 * max(h / dh, w / dw, 1.0))


@fast
@given(h=sizes, w=sizes, dh=sizes, dw=sizes)
def test_stretch_map_matches_opencv_sampling(h: int, w: int, dh: int, dw: int) -> None:
    out, t = stretch(_ramp(h, w), (dh, dw))
    _check_sampled(out, t, (h, w), tol=2e-3 * max(h / dh, w / dw, 1.0))


box_coord = st.floats(min_value=0.0, max_value=300.0, allow_nan=False)


@fast
@given(
    x0=box_coord,
    y0=box_coord,
    bw=st.floats(5, 200),
    bh=st.floats(5, 200),
    padding=st.floats(1.0, 1.5),
    ar=st.sampled_from([None, 0.75, 1.0]),
)
def test_topdown_crop_map_matches_opencv_sampling(
    x0: float, y0: float, bw: float, bh: float, padding: float, ar: float | None
) -> None:
    image = _ramp(320, 360)
    boxes = np.array([[x0, y0, x0 + bw, y0 + bh], [10.0, 20.0, 60.0, 200.0]])
    crops, t = topdown_crops(image, boxes, (64, 48), aspect_ratio=ar, padding=padding)
    assert crops.shape == (2, 64, 48, 3)
    for i in range(2):
        # remap maps are float32: allow for their rounding at coordinates of a few hundred pixels
        _check_sampled(crops[i], t[i], (320, 360), margin=1, tol=3e-3)


@fast
@given(
    h=sizes,
    w=sizes,
    dh=sizes,
    dw=sizes,
    anchor=st.sampled_from(["center", "top_left"]),
    pts=st.lists(st.tuples(st.floats(-50, 450), st.floats(-50, 450)), min_size=1, max_size=8),
)
def test_letterbox_points_round_trip_below_001_px(
    h: int, w: int, dh: int, dw: int, anchor: str, pts: list[tuple[float, float]]
) -> None:
    t, (nh, nw), (top, left) = letterbox_transform((h, w), (dh, dw), anchor)
    p = np.array(pts)
    back = t.inverse().apply_points(t.apply_points(p))
    assert np.abs(back - p).max() < 0.01
    # the whole source image lands exactly on the resized region
    np.testing.assert_allclose(t.apply_boxes([0, 0, w, h]), [left, top, left + nw, top + nh], atol=1e-9)


@fast
@given(
    boxes=st.lists(
        st.tuples(box_coord, box_coord, st.floats(1, 300), st.floats(1, 300)), min_size=1, max_size=6
    ),
    dh=st.integers(32, 384),
    dw=st.integers(32, 384),
    padding=st.floats(1.0, 2.0),
)
def test_topdown_points_and_boxes_round_trip_below_001_px(
    boxes: list[tuple[float, float, float, float]], dh: int, dw: int, padding: float
) -> None:
    b = np.array([[x, y, x + w, y + h] for x, y, w, h in boxes])
    t = topdown_transform(b, (dh, dw), padding=padding)
    pts = np.random.default_rng(0).uniform(-100, 700, size=(len(b), 17, 2))
    back = t.inverse().apply_points(t.apply_points(pts))
    assert np.abs(back - pts).max() < 0.01
    # the box centre maps to the crop centre and the box fits inside the crop
    centre = t.apply_points(((b[:, :2] + b[:, 2:]) / 2)[:, None])[:, 0]
    np.testing.assert_allclose(centre, np.tile([dw / 2, dh / 2], (len(b), 1)), atol=1e-6)
    mapped = t.apply_boxes(b)
    assert (
        (mapped[:, :2] >= -1e-6).all()
        and (mapped[:, 2] <= dw + 1e-6).all()
        and (mapped[:, 3] <= dh + 1e-6).all()
    )


def test_topdown_widens_box_to_input_aspect_ratio() -> None:
    t = topdown_transform([[100, 100, 200, 400]], (256, 192), padding=1.25)  # tall box, w/h = 1/3
    region = t.inverse().apply_boxes([[0, 0, 192, 256]])[0]
    assert region[3] - region[1] == pytest.approx(300 * 1.25)
    assert (region[2] - region[0]) / (region[3] - region[1]) == pytest.approx(192 / 256)


def test_unwarp_image_inverts_letterbox_geometry() -> None:
    src = _ramp(120, 200)
    net, t = letterbox(src, (96, 96), pad_value=0.0)
    back = unwarp_image(net, t, (120, 200))
    assert back.shape == (120, 200, 3)
    # upsampling a downscaled linear ramp is linear again: interior values match the source
    np.testing.assert_allclose(back[10:-10, 10:-10, :2], src[10:-10, 10:-10, :2], atol=2e-3)


def test_batched_affine_matches_per_item_and_composes() -> None:
    rng = np.random.default_rng(1)
    mats = np.concatenate([rng.uniform(0.5, 2, (5, 2, 2)), rng.uniform(-50, 50, (5, 2, 1))], axis=2)
    t = AffineTransform(mats)
    pts = rng.uniform(0, 100, (5, 7, 2))
    batched = t.apply_points(pts)
    for i in range(5):
        np.testing.assert_allclose(batched[i], t[i].apply_points(pts[i]), atol=1e-12)
    np.testing.assert_allclose(t.then(t.inverse()).matrix, np.tile(np.eye(2, 3), (5, 1, 1)), atol=1e-12)


@pytest.mark.parametrize("color", ["RGB", "BGR", "GRAY"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_normalizer_inverse_restores_uint8_pixels_exactly(color: str, layout: str) -> None:
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (2, 17, 23, 3), dtype=np.uint8)
    n = Normalizer(
        scale=1 / 255,
        mean=(0.485, 0.456, 0.406) if color != "GRAY" else (0.5,),
        std=(0.229, 0.224, 0.225) if color != "GRAY" else (0.25,),
        color=color,
        layout=layout,
    )
    x = n(images)
    assert x.dtype == np.float32
    assert x.shape == ((2, n.channels, 17, 23) if layout == "NCHW" else (2, 17, 23, n.channels))
    back = n.invert(x)
    if color == "GRAY":
        import cv2

        gray = np.stack([cv2.cvtColor(im, cv2.COLOR_BGR2GRAY) for im in images])
        assert np.array_equal(back[..., 0], gray)
    else:
        assert np.array_equal(back, images)


def test_normalizer_applies_scale_mean_std_in_model_colour_order() -> None:
    bgr = np.array([[[10, 20, 30]]], dtype=np.uint8)  # B=10, G=20, R=30
    n = Normalizer(scale=0.5, mean=(1.0, 2.0, 3.0), std=(2.0, 4.0, 8.0), color="RGB", layout="NCHW")
    x = n(bgr)[0, :, 0, 0]
    np.testing.assert_allclose(x, [(30 * 0.5 - 1) / 2, (20 * 0.5 - 2) / 4, (10 * 0.5 - 3) / 8], rtol=1e-6)


def test_layout_round_trip() -> None:
    x = np.arange(2 * 4 * 5 * 3).reshape(2, 4, 5, 3)
    for layout in ("NCHW", "NHWC"):
        assert np.array_equal(from_layout(to_layout(x, layout), layout), x)
    assert to_layout(x, "NCHW").shape == (2, 3, 4, 5)


def test_preprocessor_from_card_letterbox_and_topdown() -> None:
    base = {"name": "m", "outputs": [{"name": "y"}]}
    det = parse_card(
        {
            **base,
            "inputs": [
                {
                    "name": "images",
                    "shape": [1, 3, 64, 64],
                    "resize": {"policy": "letterbox", "pad_value": 114},
                }
            ],
        }
    )
    image = np.full((48, 96, 3), 200, dtype=np.uint8)
    prepared = Preprocessor.from_card(det)(image)
    assert prepared.tensor.shape == (1, 3, 64, 64) and prepared.source_hw == (48, 96)
    # 96x48 -> 64x32 centred: rows 0-15 are padding (114 / 255), rows 16-47 the image (200 / 255)
    assert prepared.tensor[0, 0, 8, 10] == pytest.approx(114 / 255)
    assert prepared.tensor[0, 0, 30, 10] == pytest.approx(200 / 255)
    pose = parse_card(
        {**base, "inputs": [{"name": "images", "shape": [1, 3, 64, 48], "resize": {"policy": "topdown"}}]}
    )
    prepared = Preprocessor.from_card(pose)(image, boxes=[[0, 0, 10, 20], [5, 5, 50, 40]])
    assert prepared.tensor.shape == (2, 3, 64, 48) and prepared.transform.batched
