"""Cards for each supported output format, and export of a torch module next to its card.

The card builders double as examples of what a user writes for a third-party model of that format.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from perception_pkg.pose.coco17 import KEYPOINT_NAMES
from perception_pkg.training.export import card_with_sha256, export_onnx

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def _image_input(
    hw: tuple[int, int], resize: dict[str, Any], batch: int | str = 1, **extra: Any
) -> dict[str, Any]:
    spec = {
        "name": "images",
        "shape": [batch, 3, hw[0], hw[1]],
        "dtype": "float32",
        "layout": "NCHW",
        "color": "RGB",
        "scale": "1/255",
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "resize": resize,
    }
    spec.update(extra)
    return spec


def yolox_card(
    name: str,
    hw: tuple[int, int],
    classes: Sequence[str],
    strides: Sequence[int] = (8, 16, 32),
    **params: Any,
) -> dict[str, Any]:
    n = sum((hw[0] // s) * (hw[1] // s) for s in strides)
    return {
        "name": name,
        "task": "detection",
        "description": "YOLOX raw head output, grid decode on the host",
        # YOLOX feeds raw BGR 0-255 pixels, letterboxed top-left with 114
        "inputs": [
            _image_input(
                hw,
                {"policy": "letterbox", "pad_value": 114, "anchor": "top_left", "rounding": "floor"},
                color="BGR",
                scale=1.0,
                mean=[0.0],
                std=[1.0],
            )
        ],
        "outputs": [{"name": "output", "shape": [1, n, 5 + len(classes)]}],
        "decoder": {"type": "yolox", "params": {"strides": list(strides), **params}},
        "classes": list(classes),
    }


def yolov8_card(name: str, hw: tuple[int, int], classes: Sequence[str], **params: Any) -> dict[str, Any]:
    n = sum((hw[0] // s) * (hw[1] // s) for s in (8, 16, 32))
    return {
        "name": name,
        "task": "detection",
        "inputs": [
            _image_input(
                hw, {"policy": "letterbox", "pad_value": 114, "anchor": "center"}, mean=[0.0], std=[1.0]
            )
        ],
        "outputs": [{"name": "output0", "shape": [1, 4 + len(classes), n]}],
        "decoder": {"type": "yolov8", "params": dict(params)},
        "classes": list(classes),
    }


def yolov8_pose_card(
    name: str, hw: tuple[int, int], keypoints: Sequence[str] = KEYPOINT_NAMES, **params: Any
) -> dict[str, Any]:
    n = sum((hw[0] // s) * (hw[1] // s) for s in (8, 16, 32))
    return {
        "name": name,
        "task": "pose",
        "inputs": [
            _image_input(
                hw, {"policy": "letterbox", "pad_value": 114, "anchor": "center"}, mean=[0.0], std=[1.0]
            )
        ],
        "outputs": [{"name": "output0", "shape": [1, 4 + 1 + 3 * len(keypoints), n]}],
        "decoder": {"type": "yolov8_pose", "params": dict(params)},
        "classes": ["person"],
        "keypoints": list(keypoints),
    }


def topdown_card(
    name: str,
    hw: tuple[int, int] = (256, 192),
    keypoints: Sequence[str] = KEYPOINT_NAMES,
    sigmoid: bool = False,
    batch: int | str = 1,
    **params: Any,
) -> dict[str, Any]:
    card = {
        "name": name,
        "task": "pose",
        # the stack's own crop / grid conventions, which the planted-output tests compute with; a card for
        # an upstream (GluonCV, mmpose) model leaves crop, alignment and refine_rule at their defaults
        "inputs": [
            _image_input(
                hw, {"policy": "topdown", "padding": 1.25, "pad_value": 0, "crop": "exact"}, batch=batch
            )
        ],
        "outputs": [{"name": "heatmaps", "shape": [batch, len(keypoints), hw[0] // 4, hw[1] // 4]}],
        "decoder": {
            "type": "heatmap_argmax",
            "params": {
                "activation": "sigmoid" if sigmoid else "none",
                "alignment": "cell",
                "refine_rule": "inner",
                **params,
            },
        },
        "keypoints": list(keypoints),
    }
    if isinstance(batch, str):
        card["inputs"][0]["dynamic"] = {batch: [1, 4, 16]}
    return card


def centernet_card(name: str, hw: tuple[int, int], classes: Sequence[str], **params: Any) -> dict[str, Any]:
    h, w = hw[0] // 4, hw[1] // 4
    return {
        "name": name,
        "task": "detection",
        "inputs": [_image_input(hw, {"policy": "letterbox", "pad_value": 0, "anchor": "center"})],
        "outputs": [
            {"name": "hm", "shape": [1, len(classes), h, w]},
            {"name": "wh", "shape": [1, 2, h, w]},
            {"name": "reg", "shape": [1, 2, h, w]},
        ],
        "decoder": {
            "type": "centernet",
            "outputs": {"heatmap": "hm", "size": "wh", "offset": "reg"},
            "params": {"stride": 4, **params},
        },
        "classes": list(classes),
    }


def write_model(
    module: torch.nn.Module,
    card: dict[str, Any],
    directory: str | Path,
    dynamo: bool = False,
    dynamic_batch: bool = False,
    weights: bool = False,
    factory: str | None = None,
    factory_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Export ``module`` to ``directory/model.onnx`` with the card's I/O names, write ``card.yaml``.

    With ``weights`` the state dict goes to ``weights.pt`` and the card gets a ``torch`` section
    (``factory`` must then name the module's constructor) so the torch backend can rebuild it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    spec = card["inputs"][0]
    shape = [1 if isinstance(d, str) else d for d in spec["shape"]]
    example = torch.rand(*shape)
    export_onnx(
        module,
        example,
        directory / "model.onnx",
        [i["name"] for i in card["inputs"]],
        [o["name"] for o in card["outputs"]],
        dynamic_batch=dynamic_batch,
        dynamo=dynamo,
    )
    card = dict(card)
    if weights:
        if factory is None:
            raise ValueError("weights=True needs the module's factory ('package.module:callable')")
        torch.save(module.state_dict(), directory / "weights.pt")
        card["torch"] = {"factory": factory, "weights": "weights.pt", "kwargs": dict(factory_kwargs or {})}
    path = directory / "card.yaml"
    path.write_text(yaml.safe_dump(card_with_sha256(card, directory), sort_keys=False))
    return path
