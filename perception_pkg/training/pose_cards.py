"""Model cards of the sim pose network: one card per decoder variant, all reading the same ONNX.

No torch here: the metrics and the benchmark build decoders from these card dicts without training code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perception_pkg.pose.coco17 import KEYPOINT_NAMES, NUM_KEYPOINTS, SKELETON

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STRIDE = 4
OUTPUT_NAMES = ("heatmaps", "integral", "md_c", "md_ox", "md_oy")

# decoder variants a card can select: (card suffix, decoder type, roles -> outputs, params)
DECODER_VARIANTS: dict[str, tuple[str, dict[str, str], dict[str, Any]]] = {
    "argmax": (
        "heatmap_argmax",
        {"heatmaps": "heatmaps"},
        {"activation": "none", "refine": "quarter", "alignment": "cell", "refine_rule": "inner"},
    ),
    "integral": ("integral", {"logits": "integral"}, {"on_invalid": "raise", "alignment": "cell"}),
    "md_additive": (
        "mass_displacement",
        {"c": "md_c", "o_x": "md_ox", "o_y": "md_oy"},
        {"voting": "additive", "alignment": "cell"},
    ),
    "md_noisy_or": (
        "mass_displacement",
        {"c": "md_c", "o_x": "md_ox", "o_y": "md_oy"},
        {"voting": "noisy_or", "alignment": "cell"},
    ),
}
# the same decoder on ``<stem>_flip.onnx`` (pose_model.FlipAveraged: flip test-time augmentation in the graph)
FLIP_VARIANTS: dict[str, str] = {"integral_flip": "integral"}
CARD_VARIANTS = (*DECODER_VARIANTS, *FLIP_VARIANTS)


def card_dict(
    name: str,
    model_file: str,
    input_hw: tuple[int, int],
    variant: str,
    eps: float,
    provenance: dict[str, Any],
    width: int,
    weights: str | None = None,
) -> dict[str, Any]:
    dtype, roles, params = DECODER_VARIANTS[FLIP_VARIANTS.get(variant, variant)]
    params = dict(params)
    if dtype == "mass_displacement":
        params.update({"d": eps, "kernel": "bilinear"})
    h, w = input_hw
    mh, mw = h // STRIDE, w // STRIDE
    card: dict[str, Any] = {
        "name": name,
        "task": "pose",
        "description": f"sim top-down pose, {h}x{w} crops, {mh}x{mw} maps; decoder {variant}",
        "model": model_file,
        "inputs": [
            {
                "name": "input",
                "shape": ["batch", 3, h, w],
                "dynamic": {"batch": [1, 16, 64]},
                "color": "RGB",
                "scale": "1/255",
                "mean": list(IMAGENET_MEAN),
                "std": list(IMAGENET_STD),
                # this stack's own crop and grid conventions (the card defaults are upstream's)
                "resize": {
                    "policy": "topdown",
                    "aspect_ratio": 0.75,
                    "padding": 1.25,
                    "pad_value": 0,
                    "crop": "exact",
                },
            }
        ],
        "outputs": [{"name": o, "shape": ["batch", NUM_KEYPOINTS, mh, mw]} for o in OUTPUT_NAMES],
        "decoder": {"type": dtype, "outputs": roles, "params": params},
        "keypoints": list(KEYPOINT_NAMES),
        "skeleton": [list(limb) for limb in SKELETON],  # 0-based, as the card schema reads it
        "provenance": provenance,
    }
    if weights:
        card["torch"] = {
            "factory": "perception_pkg.training.pose_model:build",
            "weights": weights,
            "kwargs": {"num_keypoints": NUM_KEYPOINTS, "width": width},
        }
    return card


def write_yaml(path: Path, data: dict[str, Any], header: str) -> None:
    import yaml

    text = yaml.safe_dump(data, sort_keys=False, width=110, default_flow_style=None)
    path.write_text(header + text)


def write_cards(
    out: Path,
    stem: str,
    input_hw: tuple[int, int],
    record: dict[str, Any],
    results: dict[str, dict[str, float]],
    default_card: bool,
) -> list[Path]:
    """One card per decoder variant (``card_<stem>_<variant>.yaml``); ``card.yaml`` = the best by OKS AP."""
    h, w = input_hw
    written = []
    best = max(results, key=lambda v: results[v]["oks_ap"]) if results else "argmax"
    data_note = (
        f"simulator (perception_pkg.sim) person crops around ground-truth modal boxes, training scene "
        f"seeds {record['train_scene_seeds']} ({record['train_crops']} crops), held-out seeds "
        f"{record.get('heldout_scene_seeds', '-')} ({record.get('heldout_people', 0)} people, box height "
        ">= 40 px, >= 8 labelled keypoints)"
    )
    for variant in list(CARD_VARIANTS) + (["__default__"] if default_card else []):
        v = best if variant == "__default__" else variant
        if v not in CARD_VARIANTS:  # e.g. argmax_rsn is measured but needs two passes outside a card
            continue
        flip = v in FLIP_VARIANTS
        model_file = f"{stem}_flip.onnx" if flip else f"{stem}.onnx"
        if not (out / model_file).is_file():
            continue
        acc = {k: round(float(x), 4) for k, x in results.get(v, {}).items()}
        if acc:
            acc["note"] = (
                "held-out sim people, GT boxes as input; pycocotools OKS AP (COCO sigmas, area = visible "
                "px), "
                "oks_ap_ml = COCO medium+large people only (area >= 32^2); PCK by max(box w, h)"
            )
        prov = {
            "training": (
                f"{record['command']}  (seed {record['seed']}, {record['epochs']} epochs, "
                f"{record['train_seconds']} s on {record['threads']} CPU thread(s), bf16 {record['bf16']})"
            ),
            "data": data_note,
            "accuracy": acc,
            "source": "perception_pkg.training.pose_train (this repository)",
            "license": "same as this repository",
            "notes": (
                f"one network, three heads (heatmaps MSE sigma {record['sigma_hm']:.2f} cells, integral L1, "
                f"mass displacement eps_c = d = {record['eps_c']} cells); this card selects {v}"
                + ("; flip test-time augmentation inside the graph (2x compute)" if flip else "")
            ),
        }
        name = f"sim_pose_{h}x{w}_{v}"
        # the torch factory rebuilds the plain network, so flip cards have no torch section
        weights = None if flip else f"{stem}.pt"
        card = card_dict(name, model_file, input_hw, v, record["eps_c"], prov, record["width"], weights)
        path = out / ("card.yaml" if variant == "__default__" else f"card_{h}x{w}_{v}.yaml")
        header = (
            f"# Default top-down pose model of this stack (best decoder on held-out sim people: {v}).\n"
            if variant == "__default__"
            else f"# Sim top-down pose, {h}x{w} input, decoder {v}. Written by pose_train.\n"
        )
        from perception_pkg.training.export import card_with_sha256

        write_yaml(path, card_with_sha256(card, out), header)
        written.append(path)
    return written
