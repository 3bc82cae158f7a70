"""Held-out accuracy of every pose decoder on the same network outputs: OKS AP (pycocotools) and PCK.

Decoding goes through the card decoders (``decoders/registry``) built from the very card dicts the trainer
writes, so the numbers are those of the shipped cards; the RSN variant (Gaussian blur, flip average,
quarter shift; ``heatmap_argmax.rsn_decode``) needs the flipped crop's heatmaps, i.e. a second inference,
which a card decoder cannot ask for, so it is decoded here from both passes.

Protocol (stated in every table): held-out simulator scenes, people with a ground-truth modal box at least
40 px tall and >= 8 labelled keypoints, the ground-truth box as the crop box (no detector). Keypoints are
compared in the continuous image frame. OKS uses the COCO sigmas and ``area`` = the person's visible
pixels (what the sim's COCO export writes); AP is averaged over OKS .50:.05:.95 with up to 100 people per
frame (pycocotools' keypoint default of 20 would silently drop people in crowded frames); ``oks_ap_ml`` is
the same AP over COCO's medium + large people only (area >= 32^2 px, about 80 px tall here), the only sizes
COCO annotates with keypoints: with area = visible pixels (~0.17 h^2 for these people), a 50 px tall
person has s = sqrt(area) ~ 20 px, so a 1 px error per axis already costs a nose OKS term ~0.5. PCK@a: a
labelled keypoint is correct within ``a * max(box w, box h)`` of the ground truth (box = GT modal box);
``pck_auc`` is the trapezoid area under PCK over a = 0, 0.01, ..., 0.5, divided by 0.5. The metrics are
those of ``perception eval pose``: :mod:`perception_pkg.metrics.keypoints`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.schema import parse_card
from perception_pkg.decoders.pose.geometry import heatmap_to_crop
from perception_pkg.decoders.pose.heatmap_argmax import pose_score, rsn_decode
from perception_pkg.decoders.pose.integral import non_integral_mask
from perception_pkg.decoders.registry import build_decoder
from perception_pkg.metrics.keypoints import ALPHAS, coco_keypoint_ap, pck_auc, pck_curve
from perception_pkg.pose.coco17 import FLIP_PAIRS, flip_permutation
from perception_pkg.preprocess.affine import AffineTransform
from perception_pkg.training.pose_cards import (
    DECODER_VARIANTS,
    FLIP_VARIANTS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    STRIDE,
    card_dict,
)
from perception_pkg.training.pose_data import PoseSet

MEDIUM_AREA = 32.0**2
VARIANT_ORDER = ("argmax", "argmax_rsn", "integral", "integral_flip", "md_additive", "md_noisy_or")


def rsn_blur_kernel(map_w: int) -> int:
    """Blur kernel for RSN post-processing: 5 cells on 32x24 maps, 3 on 16x12 (about the target's width)."""
    return 5 if map_w >= 24 else 3


def decode_variants(
    outputs: Mapping[str, NDArray],
    outputs_flipped: Mapping[str, NDArray] | None,
    input_hw: tuple[int, int],
    eps: float,
    outputs_tta: Mapping[str, NDArray] | None = None,
) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Crop-pixel keypoints (N, K, 2) and scores (N, K) of every decoder variant.

    ``outputs_tta``: outputs of the flip-averaged graph (``<stem>_flip.onnx``), read by the flip cards."""
    res = {}
    sources = {v: outputs for v in DECODER_VARIANTS}
    if outputs_tta is not None:
        sources.update({v: outputs_tta for v in FLIP_VARIANTS})
    for variant, source in sources.items():
        data = card_dict("eval", "model.onnx", input_hw, variant, eps, {}, 32)
        if data["decoder"]["type"] == "integral":
            # the shipped card refuses non-integral maps; here they are decoded and scored 0 (so a
            # half-trained model still gets a number), and the share is reported by evaluate_outputs
            data["decoder"]["params"]["on_invalid"] = "flag"
        kp = build_decoder(parse_card(data))(source)
        res[variant] = (kp.xy, kp.scores)
    if outputs_flipped is not None:
        hm = np.asarray(outputs["heatmaps"])
        cells, score = rsn_decode(hm, outputs_flipped["heatmaps"], FLIP_PAIRS, rsn_blur_kernel(hm.shape[-1]))
        res["argmax_rsn"] = (heatmap_to_crop(cells, STRIDE, "cell"), score)
    return {v: res[v] for v in VARIANT_ORDER if v in res}


def to_image(xy_crop: NDArray, to_crop: NDArray) -> NDArray[np.float64]:
    """Crop pixels -> image pixels through the exact inverse of each person's crop map."""
    return AffineTransform(to_crop).inverse().apply_points(xy_crop)


def _coco_gt(held: PoseSet) -> dict[str, Any]:
    images = [{"id": int(i), "width": 640, "height": 480} for i in np.unique(held.frame_ids)]
    anns = []
    for i in range(len(held)):
        kp = held.keypoints[i].copy()
        kp[kp[:, 2] == 0, :2] = 0.0
        x0, y0, x1, y1 = held.boxes[i]
        anns.append(
            {
                "id": i + 1,
                "image_id": int(held.frame_ids[i]),
                "category_id": 1,
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                "area": float(held.areas[i]),
                "iscrowd": 0,
                "keypoints": [float(v) for v in kp.ravel()],
                "num_keypoints": int((kp[:, 2] > 0).sum()),
            }
        )
    return {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "keypoints": [], "skeleton": []}],
    }


def oks_ap(pred_xy: NDArray, person_scores: NDArray, held: PoseSet) -> dict[str, float]:
    """pycocotools COCOeval (iouType keypoints, COCO sigmas; :func:`metrics.keypoints.coco_keypoint_ap`):
    AP, AP50, AP75 over held-out people, and AP over COCO's medium + large ones (NaN when there are none)."""
    dets = []
    for i in range(len(held)):
        kp = np.concatenate([pred_xy[i], np.ones((pred_xy.shape[1], 1))], axis=1)
        dets.append(
            {
                "image_id": int(held.frame_ids[i]),
                "category_id": 1,
                "keypoints": [float(v) for v in kp.ravel()],
                "score": float(person_scores[i]),
            }
        )
    # "all", and COCO's medium + large (area >= 32^2): COCO labels keypoints only on those people
    ap = coco_keypoint_ap(_coco_gt(held), dets, max_dets=100, area_ranges={"ml": (MEDIUM_AREA, 1e10)})

    def nan_if_empty(v: float) -> float:  # COCOeval's -1 = nothing to score
        return float("nan") if v == -1 else v

    return {
        "oks_ap": nan_if_empty(ap["AP"]),
        "oks_ap50": nan_if_empty(ap["AP50"]),
        "oks_ap75": nan_if_empty(ap["AP75"]),
        "oks_ap_ml": nan_if_empty(ap["AP_ml"]),
        "people_ml": int((held.areas >= MEDIUM_AREA).sum()),
    }


def pck(pred_xy: NDArray, held: PoseSet, alphas: tuple[float, ...] = (0.05, 0.1)) -> dict[str, float]:
    """PCK@alpha (:func:`metrics.keypoints.pck_curve`: labelled keypoints within ``alpha * max(box w, h)``
    of the truth, person i predicted by row i) at ``alphas``, its AUC over [0, 0.5]
    (:func:`metrics.keypoints.pck_auc`) and the mean pixel error."""
    gt = held.keypoints
    lab = gt[..., 2] > 0
    size = np.maximum(held.boxes[:, 2] - held.boxes[:, 0], held.boxes[:, 3] - held.boxes[:, 1])
    dist = np.linalg.norm(pred_xy - gt[..., :2], axis=-1)
    at = pck_curve(dist, size, lab, alphas)
    out = {f"pck@{a:g}": float(v) for a, v in zip(alphas, at, strict=True)}
    out["pck_auc"] = pck_auc(pck_curve(dist, size, lab, ALPHAS), ALPHAS)
    out["mean_err_px"] = float(dist[lab].mean())
    return out


def evaluate_outputs(
    outputs: Mapping[str, NDArray],
    outputs_flipped: Mapping[str, NDArray] | None,
    held: PoseSet,
    input_hw: tuple[int, int],
    eps: float,
    outputs_tta: Mapping[str, NDArray] | None = None,
) -> dict[str, dict[str, float]]:
    to_crop = held.to_crop[input_hw]
    results = {}
    decoded = decode_variants(outputs, outputs_flipped, input_hw, eps, outputs_tta)
    for variant, (xy, scores) in decoded.items():
        img = to_image(xy, to_crop)
        results[variant] = {**oks_ap(img, pose_score(scores), held), **pck(img, held)}
    if "integral" in outputs:
        results["integral"]["non_integral_share"] = float(non_integral_mask(outputs["integral"]).mean())
    return results


def run_batched(
    infer: Callable[[NDArray], Mapping[str, NDArray]], x: NDArray, batch: int = 64
) -> dict[str, NDArray]:
    parts = [infer(x[i : i + batch]) for i in range(0, len(x), batch)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def network_inputs(crops_rgb: NDArray) -> NDArray[np.float32]:
    """RGB uint8 crops -> normalised NCHW float32 (ImageNet mean/std), as the card's preprocessing."""
    from perception_pkg.preprocess.normalize import Normalizer

    norm = Normalizer(1 / 255, IMAGENET_MEAN, IMAGENET_STD, "RGB", "NCHW")
    return norm(np.ascontiguousarray(crops_rgb[..., ::-1]))  # the normaliser takes BGR, like the runtime


def evaluate_infer(
    infer: Callable[[NDArray], Mapping[str, NDArray]],
    held: PoseSet,
    input_hw: tuple[int, int],
    eps: float,
    flip: bool = True,
    infer_tta: Callable[[NDArray], Mapping[str, NDArray]] | None = None,
) -> dict[str, dict[str, float]]:
    """Evaluate any ``infer(batch NCHW) -> {output name: array}`` on the held-out crops; ``infer_tta`` is
    the flip-averaged graph, when there is one."""
    crops = held.crops[input_hw]
    x = network_inputs(crops)
    outputs = run_batched(infer, x)
    flipped = run_batched(infer, network_inputs(crops[:, :, ::-1])) if flip else None
    tta = run_batched(infer_tta, x) if infer_tta is not None else None
    return evaluate_outputs(outputs, flipped, held, input_hw, eps, tta)


def evaluate_model(
    model: Any, held: PoseSet, input_hw: tuple[int, int], eps: float
) -> dict[str, dict[str, float]]:
    """Evaluate a torch :class:`SimPoseNet` (eval mode, float32) on the held-out split."""
    import torch

    from perception_pkg.training.pose_cards import OUTPUT_NAMES
    from perception_pkg.training.pose_model import FlipAveraged

    model = model.float().eval()
    tta_model = FlipAveraged(model, [int(i) for i in flip_permutation()]).eval()

    def runner(net: Any) -> Callable[[NDArray], dict[str, NDArray]]:
        def infer(x: NDArray) -> dict[str, NDArray]:
            with torch.no_grad():
                outs = net(torch.from_numpy(x))
            return {n: o.numpy() for n, o in zip(OUTPUT_NAMES, outs, strict=True)}

        return infer

    return evaluate_infer(runner(model), held, input_hw, eps, infer_tta=runner(tta_model))
