"""Card-driven model: preprocess -> engine.infer -> decode -> camera frame, each stage callable alone.

What a pipeline uses for any single-image-input model: results come back in source-image pixels. The
engine is warmed up when the runner is made (outputs finite and shaped as the card says, or the runner
is not made), and every inference is checked for NaN / inf: :class:`NonFiniteOutput` rather than a
frame of silently empty results.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.registry import build_decoder
from perception_pkg.engines.base import Engine, NonFiniteOutput, non_finite
from perception_pkg.engines.select import load_engine
from perception_pkg.preprocess.pipeline import Prepared, Preprocessor


class ModelRunner:
    """``runner(image[, boxes])`` -> Detections (one image), Keypoints (one per box), image, or raw outputs.

    ``clip`` clips detection boxes to the image. Batches larger than the engine allows (top-down crops on
    a batch-1 model) are run in chunks and concatenated. ``warmup`` runs the engine once at construction
    and checks its outputs (:meth:`Engine.warmup`: CardError for shapes the card does not describe,
    NonFiniteOutput for NaN / inf).
    """

    def __init__(
        self,
        card: ModelCard,
        engine: Engine | None = None,
        backend: str = "auto",
        clip: bool = True,
        warmup: bool = True,
        **engine_options: Any,
    ) -> None:
        self.card = card
        self.engine = engine if engine is not None else load_engine(card, backend, **engine_options)
        self.preprocessor = Preprocessor.from_card(card)
        self.decoder = build_decoder(card)
        # per frame only the outputs the decoder reads are checked (the detector's unused pose heads
        # were 60% of its NaN check); the warm-up checks every output
        read = set(getattr(self.decoder, "tensors", {}).values())
        self.checked = tuple(o.name for o in card.outputs if o.name in read) or tuple(
            o.name for o in card.outputs
        )
        self.clip = clip
        spec = self.preprocessor.spec
        self.input_name = spec.name
        if len(card.inputs) != 1:
            raise ValueError(
                f"{card.name}: ModelRunner handles single-input models; use engine.infer directly"
            )
        batch = spec.shape[0]
        self.max_batch = batch if isinstance(batch, int) else spec.dynamic[batch][2]
        if warmup:
            self.engine.warmup(runs=1)

    def preprocess(self, image: NDArray, boxes: ArrayLike | None = None) -> Prepared:
        return self.preprocessor(image, boxes)

    def infer(self, prepared: Prepared) -> dict[str, NDArray]:
        """The engine's outputs for a prepared input; NonFiniteOutput when one the decoder reads holds NaN
        or inf."""
        return self.check(self.run_engine(prepared))

    def run_engine(self, prepared: Prepared) -> dict[str, NDArray]:
        """The engine's outputs, unchecked (in chunks of the engine's largest batch)."""
        tensor = prepared.tensor
        if tensor.shape[0] <= self.max_batch:
            return self.engine.infer({self.input_name: tensor})
        parts = [
            self.engine.infer({self.input_name: tensor[i : i + self.max_batch]})
            for i in range(0, tensor.shape[0], self.max_batch)
        ]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def check(self, outputs: dict[str, NDArray]) -> dict[str, NDArray]:
        """``outputs``, or NonFiniteOutput when one the decoder reads holds NaN or inf."""
        bad = non_finite({name: outputs[name] for name in self.checked if name in outputs})
        if bad:
            raise NonFiniteOutput(self.card.name, bad)
        return outputs

    def decode(self, outputs: Mapping[str, NDArray], prepared: Prepared) -> Any:
        result = self.decoder(outputs)
        kind = self.decoder.result
        if kind == "detections":
            dets = result[0].transformed(prepared.transform.inverse())
            return dets.clipped(prepared.source_hw) if self.clip else dets
        if kind == "keypoints":
            return result.transformed(prepared.transform.inverse())
        if kind == "image":
            return self._restore(result, prepared)
        return result

    def _restore(self, images: NDArray, prepared: Prepared) -> NDArray:
        from perception_pkg.preprocess.geometry import unwarp_image

        t = prepared.transform
        return np.stack(
            [unwarp_image(img, t[i] if t.batched else t, prepared.source_hw) for i, img in enumerate(images)]
        )

    def timed(self, image: NDArray, boxes: ArrayLike | None = None) -> tuple[Any, dict[str, float]]:
        """Like calling the runner, plus seconds per stage: preprocess, inference, decode."""
        t0 = time.perf_counter()
        prepared = self.preprocess(image, boxes)
        t1 = time.perf_counter()
        outputs = self.run_engine(prepared)
        t2 = time.perf_counter()
        # the NaN check is host work: it is timed with the decode, not as inference
        result = self.decode(self.check(outputs), prepared)
        t3 = time.perf_counter()
        return result, {"preprocess": t1 - t0, "inference": t2 - t1, "decode": t3 - t2}

    def __call__(self, image: NDArray, boxes: ArrayLike | None = None) -> Any:
        prepared = self.preprocess(image, boxes)
        return self.decode(self.infer(prepared), prepared)
