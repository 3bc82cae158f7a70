"""DETR-style set prediction (RT-DETR, DETR, D-FINE): Q queries, each a box and class scores; no NMS.

Outputs, either one tensor ``predictions`` ``[B, Q, 4 + C]`` (Ultralytics RT-DETR export: boxes then
sigmoid class scores) or two, ``boxes`` ``[B, Q, 4]`` and ``logits`` ``[B, Q, C]`` (the official RT-DETR
and DETR heads). Parameters:

- ``box_format``: ``cxcywh`` (default) or ``xyxy``; ``normalized: true`` (default) when boxes are in
  [0, 1] of the network input (multiplied by its width and height here), false for input pixels.
- ``activation``: ``sigmoid`` (RT-DETR focal-loss logits), ``softmax`` (DETR: the last class is
  "no object" and is dropped after the softmax) or ``none`` (scores already activated).
- ``selection``: ``per_query`` (best class of each query above ``score_threshold``; Ultralytics
  ``RTDETRPredictor``, DETR) or ``topk`` (the ``max_detections`` best (query, class) pairs over all
  queries, so a query may give several classes; RT-DETR's ``RTDETRPostProcessor``), then the threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.errors import CardError
from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.base import Decoder, sigmoid, xywh_to_xyxy
from perception_pkg.decoders.types import Detections


def _softmax(x: NDArray) -> NDArray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class DetrDecoder(Decoder):
    optional_roles = ("predictions", "boxes", "logits")
    params: ClassVar[Mapping[str, Any]] = {
        "score_threshold": 0.25,
        "max_detections": 300,
        "box_format": "cxcywh",
        "normalized": True,
        "activation": "sigmoid",
        "selection": "per_query",
    }
    result = "detections"

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        if not self.tensors and len(card.outputs) == 1:
            self.tensors["predictions"] = card.outputs[0].name
        split = "boxes" in self.tensors and "logits" in self.tensors
        if "predictions" in self.tensors:
            if "boxes" in self.tensors or "logits" in self.tensors:
                raise CardError(
                    "decoder.outputs",
                    "map either 'predictions' ([B, Q, 4 + C]) or 'boxes' and 'logits', not both",
                    self._source,
                )
        elif not split:
            raise CardError(
                "decoder.outputs",
                f"decoder 'detr' needs 'predictions' ([B, Q, 4 + C]) or both 'boxes' ([B, Q, 4]) and "
                f"'logits' ([B, Q, C]) mapped to the card's outputs {list(card.output_names)}",
                self._source,
            )
        self.split = split
        self.score_threshold = self.number("score_threshold", lo=0.0, hi=1.0)
        self.max_detections = self.integer("max_detections")
        self.box_format = self.choice("box_format", ["cxcywh", "xyxy"])
        self.normalized = self.flag("normalized")
        self.activation = self.choice("activation", ["sigmoid", "softmax", "none"])
        self.selection = self.choice("selection", ["per_query", "topk"])
        spec = card.image_input
        self.size = np.array([spec.width, spec.height] * 2, dtype=np.float64)
        role = "logits" if split else "predictions"
        shape = self.output_shape(role)
        if shape is not None and card.classes and isinstance(shape[-1], int):
            want = len(card.classes) + (0 if split else 4) + (1 if self.activation == "softmax" else 0)
            if shape[-1] != want:
                extra = " + 1 no-object" if self.activation == "softmax" else ""
                boxes = "4 + " if not split else ""
                raise CardError(
                    "classes",
                    f"{len(card.classes)} classes need {boxes}{len(card.classes)}{extra} = {want} values per "
                    f"query in {role!r}, the output has {shape[-1]}",
                    self._source,
                )

    def _scores(self, raw: NDArray) -> NDArray:
        raw = raw.astype(np.float64)
        if self.activation == "sigmoid":
            return sigmoid(raw)
        if self.activation == "softmax":
            return _softmax(raw)[..., :-1]
        return raw

    def __call__(self, outputs: Mapping[str, NDArray]) -> list[Detections]:
        if self.split:
            boxes = self.output(outputs, "boxes", 3)
            logits = self.output(outputs, "logits", 3)
            if boxes.shape[:2] != logits.shape[:2] or boxes.shape[-1] != 4:
                raise ValueError(
                    f"boxes {boxes.shape} and logits {logits.shape}: want [B, Q, 4] and [B, Q, C]"
                )
        else:
            pred = self.output(outputs, "predictions", 3)
            if pred.shape[-1] < 5:
                raise ValueError(f"predictions {pred.shape} need 4 box values and at least one class")
            boxes, logits = pred[..., :4], pred[..., 4:]
        return [self._one(b, s) for b, s in zip(boxes, self._scores(logits), strict=True)]

    def _one(self, boxes: NDArray, scores: NDArray) -> Detections:
        b = boxes.astype(np.float64)
        xyxy = xywh_to_xyxy(b) if self.box_format == "cxcywh" else b
        if self.normalized:
            xyxy = xyxy * self.size
        if self.selection == "per_query":
            cls = scores.argmax(axis=-1)
            best = np.take_along_axis(scores, cls[:, None], axis=-1)[:, 0]
            rows = np.flatnonzero(best > self.score_threshold)
            rows = rows[np.argsort(-best[rows], kind="stable")][: self.max_detections]
            return Detections(xyxy[rows], best[rows], cls[rows].astype(np.int64))
        flat = scores.reshape(-1)
        k = min(self.max_detections, flat.size)
        top = np.argpartition(-flat, k - 1)[:k]
        top = top[np.argsort(-flat[top], kind="stable")]
        top = top[flat[top] > self.score_threshold]
        query, cls = np.divmod(top, scores.shape[-1])
        return Detections(xyxy[query], flat[top], cls.astype(np.int64))
