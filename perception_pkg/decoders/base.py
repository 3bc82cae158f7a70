"""What every decoder shares: reading its parameters and output roles from the card, score filtering."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.errors import CardError
from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.nms import nms
from perception_pkg.decoders.types import Detections


class Decoder:
    """Base class: ``__call__(outputs)`` turns raw engine outputs into results in the network-input frame.

    Subclasses declare ``roles`` (output tensors they read; ``optional_roles`` may be absent), ``params``
    (name -> default) and ``result`` (what they return: "detections" -> list[Detections] per batch item,
    "keypoints" -> Keypoints, "image" -> uint8 images, "raw" -> the output dict).
    """

    roles: ClassVar[tuple[str, ...]] = ()
    optional_roles: ClassVar[tuple[str, ...]] = ()
    params: ClassVar[Mapping[str, Any]] = {}
    result: ClassVar[str] = "raw"

    def __init__(self, card: ModelCard) -> None:
        self.card = card
        self._source = str(card.source) if card.source else None
        given = dict(card.decoder.params)
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise CardError(
                f"decoder.params.{unknown[0]}",
                f"unknown parameter for decoder {card.decoder.type!r} (known: {sorted(self.params)})",
                self._source,
            )
        self.p: dict[str, Any] = {**self.params, **given}
        self.tensors: dict[str, str] = {}
        mapping = dict(card.decoder.outputs)
        for role in self.roles + self.optional_roles:
            if role in mapping:
                self.tensors[role] = mapping[role]
            elif len(self.roles) == 1 and role in self.roles and len(card.outputs) == 1:
                self.tensors[role] = card.outputs[0].name
            elif role in self.roles:
                raise CardError(
                    f"decoder.outputs.{role}",
                    f"decoder {card.decoder.type!r} needs output role {role!r} mapped to one of "
                    f"{list(card.output_names)}",
                    self._source,
                )
        extra = sorted(set(mapping) - set(self.roles) - set(self.optional_roles))
        if extra:
            raise CardError(
                f"decoder.outputs.{extra[0]}",
                f"decoder {card.decoder.type!r} has no role {extra[0]!r} "
                f"(roles: {list(self.roles + self.optional_roles)})",
                self._source,
            )

    def fail(self, param: str, message: str) -> CardError:
        return CardError(f"decoder.params.{param}", message, self._source)

    def number(
        self, name: str, positive: bool = False, lo: float | None = None, hi: float | None = None
    ) -> float:
        value = self.p[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(name, f"expected a number, got {value!r}")
        if (positive and value <= 0) or (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = "> 0" if positive else f"in [{lo}, {hi}]"
            raise self.fail(name, f"must be {bounds}, got {value}")
        return float(value)

    def integer(self, name: str, minimum: int = 1, allow_none: bool = False) -> int | None:
        value = self.p[name]
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(name, f"expected an integer >= {minimum}, got {value!r}")
        return value

    def choice(self, name: str, options: Sequence[str]) -> str:
        value = self.p[name]
        if value not in options:
            raise self.fail(name, f"expected one of {list(options)}, got {value!r}")
        return value

    def flag(self, name: str) -> bool:
        value = self.p[name]
        if not isinstance(value, bool):
            raise self.fail(name, f"expected true or false, got {value!r}")
        return value

    def output(self, outputs: Mapping[str, NDArray], role: str, ndim: int) -> NDArray:
        name = self.tensors[role]
        if name not in outputs:
            raise KeyError(f"engine outputs lack {name!r} (decoder role {role!r}); got {sorted(outputs)}")
        arr = np.asarray(outputs[name])
        if arr.ndim != ndim:
            raise ValueError(f"output {name!r} ({role}) should have {ndim} dims, got shape {arr.shape}")
        return arr

    def output_shape(self, role: str) -> tuple[Any, ...] | None:
        """The card's declared shape for a role's tensor, if any."""
        name = self.tensors.get(role)
        for out in self.card.outputs:
            if out.name == name:
                return out.shape
        return None

    def __call__(self, outputs: Mapping[str, NDArray]) -> Any:
        raise NotImplementedError


class DetectionFilter:
    """Score threshold, candidate cap and class-aware NMS shared by the dense detection decoders."""

    def __init__(self, decoder: Decoder) -> None:
        self.score_threshold = decoder.number("score_threshold", lo=0.0, hi=1.0)
        self.iou_threshold = decoder.number("nms_iou", lo=0.0, hi=1.0)
        self.max_detections = decoder.integer("max_detections")
        self.pre_nms_top_k = decoder.integer("pre_nms_top_k")
        self.class_agnostic = decoder.flag("class_agnostic")

    def candidates(self, class_scores: NDArray) -> tuple[NDArray[np.int64], NDArray, NDArray[np.int64]]:
        """(anchor index, score, class id) of anchors whose best class clears the threshold, best first,
        at most ``pre_nms_top_k``."""
        class_ids = class_scores.argmax(axis=-1)
        best = np.take_along_axis(class_scores, class_ids[:, None], axis=-1)[:, 0]
        idx = np.flatnonzero(best >= self.score_threshold)
        if idx.size > self.pre_nms_top_k:
            idx = idx[np.argpartition(-best[idx], self.pre_nms_top_k - 1)[: self.pre_nms_top_k]]
        idx = idx[np.argsort(-best[idx], kind="stable")]
        return idx, best[idx], class_ids[idx]

    def select(
        self, boxes: NDArray, scores: NDArray, class_ids: NDArray, keypoints: NDArray | None = None
    ) -> Detections:
        keep = nms(
            boxes, scores, self.iou_threshold, None if self.class_agnostic else class_ids, self.max_detections
        )
        kp = keypoints[keep].astype(np.float64) if keypoints is not None else None
        return Detections(
            boxes[keep].astype(np.float64),
            scores[keep].astype(np.float64),
            class_ids[keep].astype(np.int64),
            kp,
        )


DETECTION_PARAMS: Mapping[str, Any] = {
    "score_threshold": 0.25,
    "nms_iou": 0.45,
    "max_detections": 100,
    "pre_nms_top_k": 1000,
    "class_agnostic": False,
}


def sigmoid(x: NDArray) -> NDArray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free form of 1 / (1 + exp(-x))


def xywh_to_xyxy(cxcywh: NDArray) -> NDArray:
    half = cxcywh[..., 2:4] / 2
    return np.concatenate([cxcywh[..., :2] - half, cxcywh[..., :2] + half], axis=-1)
