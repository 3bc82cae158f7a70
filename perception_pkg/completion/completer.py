"""The engine side of completion: a card's network completing a batch of objects in one call.

:class:`Completer` takes each object's points in the PCN object frame, resamples them to the card's
input size (``sampling.resample``, seeded per call so the same scan gives the same output), stacks
them and runs the engine once per scan (in chunks of the card's largest batch when a scan has more
objects), then hands back the decoder's (K, P, 3) points, still in the object frame.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.loader import load_card
from perception_pkg.cards.schema import ModelCard
from perception_pkg.completion.sampling import resample
from perception_pkg.decoders.registry import build_decoder
from perception_pkg.engines.base import Engine, NonFiniteOutput, non_finite
from perception_pkg.engines.select import load_engine
from perception_pkg.paths import models_dir

DEFAULT_CARD = "sim_completion/card.yaml"


def resolve_card(card: str | Path | None) -> Path:
    """empty/None/"default" -> models/sim_completion/card.yaml; a relative path that does not exist
    from the working directory is looked up under models/; a folder means its card.yaml."""
    if card is None or str(card) in ("", "default"):
        return models_dir() / DEFAULT_CARD
    path = Path(card).expanduser()
    if not path.is_absolute() and not path.exists():
        path = models_dir() / path
    return path / "card.yaml" if path.is_dir() else path


class Completer:
    def __init__(self, card: ModelCard, engine: Engine, seed: int = 0) -> None:
        if card.task != "completion":
            raise ValueError(f"card {card.name!r} is a {card.task!r} card, not a completion card")
        self.card = card
        self.engine = engine
        self.decoder = build_decoder(card)
        if card.decoder.type != "completion":
            raise ValueError(f"card {card.name!r}: decoder {card.decoder.type!r} is not 'completion'")
        spec = card.inputs[0]
        if (
            len(card.inputs) != 1
            or len(spec.shape) != 3
            or spec.shape[2] != 3
            or not isinstance(spec.shape[1], int)
        ):
            raise ValueError(
                f"card {card.name!r}: expected one input (batch, N, 3) with a fixed N, got {spec.shape}"
            )
        self.input_name = spec.name
        self.n_in = int(spec.shape[1])
        batch = spec.shape[0]
        self.max_batch = int(batch) if isinstance(batch, int) else int(spec.dynamic[batch][2])
        self.fixed_batch = isinstance(batch, int)
        self.seed = seed
        self.last_timings: dict[str, float] = {}

    @classmethod
    def from_card(
        cls, card: str | Path | None = None, backend: str = "auto", threads: int = 0, seed: int = 0
    ) -> Completer:
        path = resolve_card(card)
        if not path.is_file():
            raise ValueError(f"completion model card not found: {path}")
        c = load_card(path)
        engine = load_engine(c, backend, threads=threads or None)
        engine.warmup(runs=1)  # outputs shaped as the card says and finite, before the first scan
        return cls(c, engine, seed)

    def inputs(self, objects: list[NDArray]) -> NDArray[np.float32]:
        """(K, n_in, 3) network input of object-frame point sets (each non-empty)."""
        rng = np.random.default_rng(self.seed)
        return np.stack([resample(np.asarray(o, dtype=np.float32), self.n_in, rng) for o in objects])

    def complete(self, objects: list[NDArray]) -> NDArray[np.float32]:
        """(K, P, 3) completions, object frame; one engine call per ``max_batch`` objects."""
        t0 = time.perf_counter()
        if not objects:
            self.last_timings = {}
            return np.zeros((0, 0, 3), np.float32)
        x = self.inputs(objects)
        t1 = time.perf_counter()
        outs = []
        for s in range(0, len(x), self.max_batch):
            chunk = x[s : s + self.max_batch]
            k = len(chunk)
            if self.fixed_batch and k < self.max_batch:  # a static-batch card: pad with copies
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.max_batch - k, axis=0)])
            raw = self.engine.infer({self.input_name: chunk})
            bad = non_finite(raw)  # as ModelRunner does: a NaN model is an error, never a result
            if bad:
                raise NonFiniteOutput(self.card.name, bad)
            outs.append(self.decoder(raw)[:k])
        t2 = time.perf_counter()
        self.last_timings = {"resample": t1 - t0, "infer": t2 - t1}
        return np.concatenate(outs)

    def describe(self) -> str:
        engine = self.engine.describe() if hasattr(self.engine, "describe") else str(self.engine)
        return f"{self.card.name} on {engine}"
