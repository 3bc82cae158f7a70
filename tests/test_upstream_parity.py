"""Parity with upstream decodes (issue 15): a card with the default conventions (YOLOX: two fields)
reproduces each upstream project's own preprocessing and decoding, written here in a few lines of plain
numpy / OpenCV from its published code, on tiny ONNX models in that project's output layout
(tests/fixtures/upstream, random weights: what is compared is the geometry and the decoding, on whatever
the network says). Every box IoU >= 0.999 and every keypoint within 1e-3 px of the reference.

The references read the same ONNX file with their own onnxruntime session. Keypoint references are in
the pixel-centre convention upstream uses (COCO keypoints, ``cv2.warpAffine``); the stack's keypoints are
in its continuous convention, ``PIXEL_SHIFT`` (0.5) larger, which the message and COCO writers subtract.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

from perception_pkg.cards import parse_card  # noqa: E402
from perception_pkg.engines import ModelRunner  # noqa: E402
from perception_pkg.pose.coco17 import KEYPOINT_NAMES  # noqa: E402
from perception_pkg.preprocess.affine import PIXEL_SHIFT  # noqa: E402

FIXTURES = Path(__file__).with_name("fixtures")
UPSTREAM = FIXTURES / "upstream"
sys.path.insert(0, str(FIXTURES))
from make_card_conventions_golden import fixed_image  # noqa: E402

NET = (320, 320)
CLASSES = ["a", "b", "c"]
# odd sizes: YOLOX's int() and round() give different letterbox sizes on all of them
IMAGES = {"437x611": fixed_image()}
IMAGES["429x640"] = cv2.resize(IMAGES["437x611"], (640, 429), interpolation=cv2.INTER_AREA)
IMAGES["611x437"] = np.ascontiguousarray(IMAGES["437x611"].transpose(1, 0, 2))
# person boxes (xyxy) on the 437x611 image: inside, tall, wide, and partly outside the image
PEOPLE = np.array(
    [[100.3, 60.7, 171.9, 301.2], [350.0, 120.5, 389.25, 240.0], [500.5, 10.0, 640.0, 430.0],
     [-20.0, 300.0, 90.0, 437.0], [200.0, 200.0, 420.0, 260.0]]
)  # fmt: skip
IMAGENET = {"color": "RGB", "scale": "1/255", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def _session(model: str) -> Any:
    """A session on ``model``: a path to your own ONNX file, or a fixture name in tests/fixtures/upstream."""
    path = Path(model) if Path(model).is_file() else UPSTREAM / model
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _runner(card: dict[str, Any], clip: bool = True) -> ModelRunner:
    return ModelRunner(parse_card(card, base_dir=UPSTREAM), backend="onnxruntime", threads=1, clip=clip)


# -- plain reference pieces, as the upstream code does them ----------------------------------------------


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with (M, 4) boxes (continuous areas, as torchvision.ops.box_iou)."""
    w = (np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0])).clip(0)
    h = (np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1])).clip(0)
    inter = w * h
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return inter / np.maximum(area, 1e-12)


def _nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, thr: float) -> np.ndarray:
    """torchvision.ops.batched_nms semantics: greedy by score, same class, suppress IoU > thr."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        order = rest[~((_iou(boxes[i], boxes[rest]) > thr) & (classes[rest] == classes[i]))]
    return np.array(keep, dtype=int)


def _xywh2xyxy(b: np.ndarray) -> np.ndarray:
    return np.concatenate([b[:, :2] - b[:, 2:4] / 2, b[:, :2] + b[:, 2:4] / 2], axis=1)


def yolox_reference(img: np.ndarray, conf: float = 0.3, nms: float = 0.45) -> tuple[np.ndarray, ...]:
    """YOLOX: ``data_augment.preproc`` (int() size, top-left, 114, raw BGR), ``demo_postprocess`` grid
    decode, ``utils.postprocess`` (best class, obj x cls >= conf, batched NMS), then ``boxes /= r``."""
    padded = np.full((*NET, 3), 114, dtype=np.uint8)
    r = min(NET[0] / img.shape[0], NET[1] / img.shape[1])
    resized = cv2.resize(img, (int(img.shape[1] * r), int(img.shape[0] * r)), interpolation=cv2.INTER_LINEAR)
    padded[: int(img.shape[0] * r), : int(img.shape[1] * r)] = resized
    x = np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32)
    out = _session("yolox.onnx").run(None, {"images": x})[0][0].astype(np.float64)
    grids, strides = [], []
    for s in (8, 16, 32):
        xv, yv = np.meshgrid(np.arange(NET[1] // s), np.arange(NET[0] // s))
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        strides.append(np.full((grids[-1].shape[0], 1), s))
    grid, stride = np.concatenate(grids), np.concatenate(strides)
    out[:, :2] = (out[:, :2] + grid) * stride
    out[:, 2:4] = np.exp(out[:, 2:4]) * stride
    cls_conf, cls = out[:, 5:].max(1), out[:, 5:].argmax(1)
    score = out[:, 4] * cls_conf
    m = score >= conf
    boxes, score, cls = _xywh2xyxy(out[m, :4]), score[m], cls[m]
    keep = _nms(boxes, score, cls, nms)
    return boxes[keep] / r, score[keep], cls[keep]


def _ultralytics_letterbox(img: np.ndarray) -> np.ndarray:
    """Ultralytics ``LetterBox`` (auto=False, center=True): round() size, split padding, 114."""
    h, w = img.shape[:2]
    r = min(NET[0] / h, NET[1] / w)
    new_unpad = round(w * r), round(h * r)
    dw, dh = (NET[1] - new_unpad[0]) / 2, (NET[0] - new_unpad[1]) / 2
    if (w, h) != new_unpad:
        img = cv2.resize(img, new_unpad, interpolation=cv2.INTER_LINEAR)
    top, bottom, left, right = round(dh - 0.1), round(dh + 0.1), round(dw - 0.1), round(dw + 0.1)
    return cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))


def ultralytics_reference(
    img: np.ndarray, model: str, nc: int, nk: int = 0, conf: float = 0.25, iou: float = 0.7
) -> tuple[np.ndarray, ...]:
    """Ultralytics predict: LetterBox, RGB / 255, ``non_max_suppression`` (max class > conf, class-aware
    NMS, max_det 300), ``scale_boxes`` / ``scale_coords`` (gain and padding recomputed from the unrounded
    size) and ``clip_boxes`` / ``clip_coords``."""
    x = (
        np.ascontiguousarray(_ultralytics_letterbox(img)[..., ::-1].transpose(2, 0, 1)[None], np.float32)
        / 255
    )
    pred = _session(model).run(None, {"images": x})[0][0].T.astype(np.float64)
    cls_scores = pred[:, 4 : 4 + nc]
    pred, cls_scores = pred[cls_scores.max(1) > conf], cls_scores[cls_scores.max(1) > conf]
    boxes, score, cls = _xywh2xyxy(pred[:, :4]), cls_scores.max(1), cls_scores.argmax(1)
    keep = _nms(boxes, score, cls, iou)[:300]
    h, w = img.shape[:2]
    gain = min(NET[0] / h, NET[1] / w)
    pad = np.array([round((NET[1] - w * gain) / 2 - 0.1), round((NET[0] - h * gain) / 2 - 0.1)])
    boxes = (boxes[keep] - np.tile(pad, 2)) / gain
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    kpts = None
    if nk:
        kpts = pred[keep, 4 + nc :].reshape(-1, nk, 3).copy()
        kpts[..., :2] = (kpts[..., :2] - pad) / gain
        kpts[..., 0] = kpts[..., 0].clip(0, w)
        kpts[..., 1] = kpts[..., 1].clip(0, h)
    return boxes, score[keep], cls[keep], kpts


def _inside(ref: tuple[Any, ...]) -> tuple[Any, ...]:
    """Ultralytics returns boxes lying wholly in the letterbox padding as zero-area boxes on the image
    border after ``clip_boxes``; the stack drops them (``Detections.clipped``). Compare the others."""
    b = ref[0]
    keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    return tuple(None if r is None else r[keep] for r in ref)


def _check_boxes(ours: Any, ref: tuple[np.ndarray, ...]) -> float:
    boxes, scores, classes = ref[:3]
    assert len(boxes) >= 5, "the fixture image should give several detections to compare"
    assert len(ours) == len(boxes)
    np.testing.assert_array_equal(ours.class_ids, classes)
    np.testing.assert_allclose(ours.scores, scores, rtol=1e-4, atol=1e-6)  # float32 inputs differ by 1 ulp
    ious = np.array([_iou(a, b[None])[0] for a, b in zip(ours.boxes, boxes, strict=True)])
    assert ious.min() >= 0.999, f"min IoU {ious.min():.5f}"
    return float(ious.min())


# -- detection -------------------------------------------------------------------------------------------


def yolox_card(**resize: Any) -> dict[str, Any]:
    """What a user writes for a YOLOX export: raw BGR 0-255, and YOLOX's own letterbox (int() size,
    top-left); everything else is a default."""
    return {
        "name": "yolox_tiny",
        "task": "detection",
        "model": "yolox.onnx",
        "inputs": [{"name": "images", "shape": [1, 3, *NET], "color": "BGR", "scale": 1.0,
                    "resize": {"policy": "letterbox", "rounding": "floor", "anchor": "top_left", **resize}}],
        "outputs": [{"name": "output", "shape": [1, 2100, 8]}],
        "decoder": {"type": "yolox",
                    "params": {"score_threshold": 0.3, "nms_iou": 0.45, "max_detections": 1000,
                               "pre_nms_top_k": 2100}},
        "classes": CLASSES,
    }  # fmt: skip


def yolov8_card(model: str = "yolov8.onnx", rows: int = 7, pose: bool = False) -> dict[str, Any]:
    """What a user writes for an Ultralytics export: nothing about the letterbox (the defaults are
    Ultralytics'), the thresholds of its predict defaults."""
    card = {
        "name": "yolo_tiny",
        "model": model,
        "inputs": [{"name": "images", "shape": [1, 3, *NET], "scale": "1/255",
                    "resize": {"policy": "letterbox"}}],
        "outputs": [{"name": "output0", "shape": [1, rows, 2100]}],
        "decoder": {"type": "yolov8_pose" if pose else "yolov8",
                    "params": {"score_threshold": 0.25, "nms_iou": 0.7, "max_detections": 300,
                               "pre_nms_top_k": 2100}},
        "classes": ["person"] if pose else CLASSES,
    }  # fmt: skip
    if pose:
        card["keypoints"] = list(KEYPOINT_NAMES)
    return card


@pytest.mark.parametrize("image", list(IMAGES))
def test_yolox_card_matches_yoloxs_own_preprocessing_and_decoding(image: str) -> None:
    img = IMAGES[image]
    _check_boxes(_runner(yolox_card(), clip=False)(img), yolox_reference(img))


def test_yolox_with_the_old_rounding_and_inverse_drifts_from_upstream() -> None:
    """The issue's drift: round() instead of YOLOX's int() and the exact instead of the ratio inverse
    (what the stack did before these were card fields) feed the network another image."""
    img = IMAGES["437x611"]
    ref = yolox_reference(img)
    ours = _runner(yolox_card(rounding="round", inverse="exact"), clip=False)(img)
    n = min(len(ours), len(ref[0]))
    ious = [_iou(a, b[None])[0] for a, b in zip(ours.boxes[:n], ref[0][:n], strict=True)]
    assert len(ours) != len(ref[0]) or min(ious) < 0.999


@pytest.mark.parametrize("image", list(IMAGES))
def test_yolov8_card_matches_ultralytics_predict(image: str) -> None:
    img = IMAGES[image]
    _check_boxes(_runner(yolov8_card())(img), _inside(ultralytics_reference(img, "yolov8.onnx", nc=3)))


@pytest.mark.parametrize("image", list(IMAGES))
def test_yolov8_pose_card_matches_ultralytics_predict(image: str) -> None:
    """Ultralytics clips keypoints to the image; the stack keeps them (a keypoint outside the frame is
    still an estimate), so ours are clipped here before comparing."""
    img = IMAGES[image]
    ref = _inside(ultralytics_reference(img, "yolov8_pose.onnx", nc=1, nk=17))
    ours = _runner(yolov8_card("yolov8_pose.onnx", 56, pose=True))(img)
    _check_boxes(ours, ref)
    h, w = img.shape[:2]
    kp = ours.keypoints.copy()
    kp[..., 0] = kp[..., 0].clip(0, w)
    kp[..., 1] = kp[..., 1].clip(0, h)
    assert np.abs(kp[..., :2] - ref[3][..., :2]).max() < 1e-3
    np.testing.assert_allclose(kp[..., 2], ref[3][..., 2], atol=1e-5)  # float32 inputs differ by 1 ulp


# -- top-down pose ---------------------------------------------------------------------------------------


def _normalise(crop_bgr: np.ndarray) -> np.ndarray:
    rgb = crop_bgr[..., ::-1].astype(np.float32) / 255.0
    mean, std = np.array(IMAGENET["mean"], np.float32), np.array(IMAGENET["std"], np.float32)
    return ((rgb - mean) / std).transpose(2, 0, 1)


def _get_3rd_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=np.float32)


def gluoncv_reference(img: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GluonCV / MSRA SimpleBaseline: ``_box_to_center_scale`` (float32, aspect 0.75, x1.25),
    ``get_affine_transform`` (vertical direction, cv2.getAffineTransform), ``cv2.warpAffine``,
    ``get_final_preds`` (argmax, quarter shift on both axes only for 1 < x < W-1 and 1 < y < H-1,
    ``transform_preds`` through the heatmap-sized inverse affine)."""
    out_w, out_h, hm_w, hm_h = 192, 256, 48, 64
    crops, centres, scales = [], [], []
    for x0, y0, x1, y1 in boxes:
        w, h = x1 - x0, y1 - y0
        center = np.array([x0 + w * 0.5, y0 + h * 0.5], dtype=np.float32)
        if w > 0.75 * h:
            h = w / 0.75
        elif w < 0.75 * h:
            w = h * 0.75
        scale = np.array([w, h], dtype=np.float32) * 1.25
        centres.append(center)
        scales.append(scale)
        m = _msra_affine(center, scale, (out_w, out_h))
        crops.append(_normalise(cv2.warpAffine(img, m, (out_w, out_h), flags=cv2.INTER_LINEAR)))
    hm = _session("simplebaseline.onnx").run(None, {"images": np.stack(crops)})[0]
    n, k = hm.shape[:2]
    flat = hm.reshape(n, k, -1)
    idx = flat.argmax(2)
    coords = np.stack([idx % hm_w, idx // hm_w], axis=-1).astype(np.float32)
    preds = np.zeros((n, k, 2))
    for i in range(n):
        for j in range(k):
            px, py = int(np.floor(coords[i, j, 0] + 0.5)), int(np.floor(coords[i, j, 1] + 0.5))
            m = hm[i, j]
            if 1 < px < hm_w - 1 and 1 < py < hm_h - 1:
                diff = np.array([m[py, px + 1] - m[py, px - 1], m[py + 1, px] - m[py - 1, px]])
                coords[i, j] += np.sign(diff) * 0.25
        trans = _msra_affine(centres[i], scales[i], (hm_w, hm_h), inv=True)
        preds[i] = coords[i] @ trans[:, :2].T + trans[:, 2]
    return preds, flat.max(2)


def _msra_affine(
    center: np.ndarray, scale: np.ndarray, size: tuple[int, int], inv: bool = False
) -> np.ndarray:
    src_w, (dst_w, dst_h) = scale[0], size
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = center
    src[1] = center + np.array([0, src_w * -0.5])
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + np.array([0, dst_w * -0.5], np.float32)
    src[2], dst[2] = _get_3rd_point(src[0], src[1]), _get_3rd_point(dst[0], dst[1])
    return cv2.getAffineTransform(dst, src) if inv else cv2.getAffineTransform(src, dst)


def _mmpose_affine(box: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mmpose 1.x ``bbox_xyxy2cs`` (x1.25), ``_fix_aspect_ratio``, ``get_warp_matrix`` (rot 0)."""
    center = (box[:2] + box[2:]) * 0.5
    w, h = (box[2:] - box[:2]) * 1.25
    ar = size[0] / size[1]
    scale = np.array([w, w / ar]) if w > h * ar else np.array([h * ar, h])
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0], src[1] = center, center + np.array([scale[0] * -0.5, 0.0])
    dst[0] = [size[0] * 0.5, size[1] * 0.5]
    dst[1] = np.array([size[0] * 0.5, size[1] * 0.5]) + np.array([size[0] * -0.5, 0.0])
    src[2], dst[2] = _get_3rd_point(src[0], src[1]), _get_3rd_point(dst[0], dst[1])
    return cv2.getAffineTransform(src, dst), center, scale


def mmpose_heatmap_reference(img: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mmpose 1.x top-down: ``TopdownAffine`` (cv2.warpAffine), ``MSRAHeatmap.decode``
    (``get_heatmap_maximum``, ``refine_keypoints``: per axis for 1 < x < W-1, times the stride), then
    ``keypoints / input_size * scale + center - 0.5 * scale``."""
    size = np.array([192, 256])
    warps = [_mmpose_affine(b, (192, 256)) for b in boxes]
    crops = [_normalise(cv2.warpAffine(img, m, (192, 256), flags=cv2.INTER_LINEAR)) for m, _, _ in warps]
    hm = _session("simplebaseline.onnx").run(None, {"images": np.stack(crops)})[0]
    n, k, hh, hw = hm.shape
    flat = hm.reshape(n, k, -1)
    idx = flat.argmax(2)
    kp = np.stack([idx % hw, idx // hw], axis=-1).astype(np.float32)
    for i in range(n):
        for j in range(k):
            x, y = kp[i, j].astype(int)
            dx = hm[i, j, y, x + 1] - hm[i, j, y, x - 1] if 1 < x < hw - 1 and 0 < y < hh else 0.0
            dy = hm[i, j, y + 1, x] - hm[i, j, y - 1, x] if 1 < y < hh - 1 and 0 < x < hw else 0.0
            kp[i, j] += np.sign([dx, dy], dtype=np.float32) * 0.25
    kp = kp * (size / [hw, hh])
    centres, scales = np.stack([c for _, c, _ in warps]), np.stack([s for _, _, s in warps])
    return kp / size * scales[:, None] + centres[:, None] - 0.5 * scales[:, None], flat.max(2)


def rtmpose_reference(img: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RTMPose (mmpose ``SimCCLabel`` / rtmlib): the same affine crop, ``get_simcc_maximum`` (argmax per
    axis, score = the smaller maximum), ``locs / split_ratio``, then the same inverse as above."""
    size = np.array([192, 256])
    warps = [_mmpose_affine(b, (192, 256)) for b in boxes]
    crops = [_normalise(cv2.warpAffine(img, m, (192, 256), flags=cv2.INTER_LINEAR)) for m, _, _ in warps]
    sx, sy = _session("rtmpose.onnx").run(None, {"images": np.stack(crops)})
    locs = np.stack([sx.argmax(-1), sy.argmax(-1)], axis=-1).astype(np.float32)
    vals = np.minimum(sx.max(-1), sy.max(-1))
    kp = locs / 2.0
    centres, scales = np.stack([c for _, c, _ in warps]), np.stack([s for _, _, s in warps])
    return kp / size * scales[:, None] + centres[:, None] - 0.5 * scales[:, None], vals


def topdown_card(model: str, outputs: list[dict[str, Any]], decoder: dict[str, Any]) -> dict[str, Any]:
    """A top-down card with the default conventions (cv2 crop, legacy alignment): nothing but what the
    model says (input, normalisation, outputs, decoder)."""
    return {
        "name": "td",
        "task": "pose",
        "model": model,
        "inputs": [{"name": "images", "shape": ["batch", 3, 256, 192], "dynamic": {"batch": [1, 8, 16]},
                    **IMAGENET, "resize": {"policy": "topdown"}}],
        "outputs": outputs,
        "decoder": decoder,
        "keypoints": list(KEYPOINT_NAMES),
    }  # fmt: skip


HEATMAPS = [{"name": "heatmaps", "shape": ["batch", 17, 64, 48]}]


def _check_keypoints(ours: Any, ref: tuple[np.ndarray, np.ndarray]) -> float:
    xy, scores = ref
    assert ours.xy.shape == xy.shape
    err = np.abs(ours.xy - PIXEL_SHIFT - xy).max()
    assert err < 1e-3, f"max keypoint error {err:.2e} px"
    np.testing.assert_allclose(ours.scores, scores, rtol=1e-5, atol=1e-6)
    return float(err)


def test_simplebaseline_card_matches_gluoncv_msra_decode() -> None:
    card = topdown_card(
        "simplebaseline.onnx", HEATMAPS, {"type": "heatmap_argmax", "params": {"refine_rule": "msra"}}
    )
    img = IMAGES["437x611"]
    _check_keypoints(_runner(card)(img, PEOPLE), gluoncv_reference(img, PEOPLE))


def test_heatmap_card_with_defaults_matches_mmpose_topdown() -> None:
    card = topdown_card("simplebaseline.onnx", HEATMAPS, {"type": "heatmap_argmax"})
    img = IMAGES["437x611"]
    _check_keypoints(_runner(card)(img, PEOPLE), mmpose_heatmap_reference(img, PEOPLE))


def test_rtmpose_simcc_card_matches_mmpose_simcc_decode() -> None:
    outputs = [
        {"name": "simcc_x", "shape": ["batch", 17, 384]},
        {"name": "simcc_y", "shape": ["batch", 17, 512]},
    ]
    decoder = {"type": "simcc", "outputs": {"simcc_x": "simcc_x", "simcc_y": "simcc_y"}}
    card = topdown_card("rtmpose.onnx", outputs, decoder)
    img = IMAGES["437x611"]
    _check_keypoints(_runner(card)(img, PEOPLE), rtmpose_reference(img, PEOPLE))


@pytest.mark.parametrize(
    ("change", "value"), [("crop", "exact"), ("alignment", "cell")], ids=["exact-crop", "cell-alignment"]
)
def test_the_old_topdown_conventions_miss_mmpose_by_more_than_the_tolerance(change: str, value: str) -> None:
    """What the stack did before (its own crop convention, cell alignment) moves keypoints past 1e-3 px."""
    card = topdown_card("simplebaseline.onnx", HEATMAPS, {"type": "heatmap_argmax", "params": {}})
    if change == "crop":
        card["inputs"][0]["resize"]["crop"] = value
    else:
        card["decoder"]["params"]["alignment"] = value
    img = IMAGES["437x611"]
    xy, _ = mmpose_heatmap_reference(img, PEOPLE)
    err = np.abs(_runner(card)(img, PEOPLE).xy - PIXEL_SHIFT - xy)
    assert err.max() > 0.1
