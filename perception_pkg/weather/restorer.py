"""Weather restoration of one camera frame: classify the condition, let the gate decide, restore.

- :class:`ConditionClassifier`: a card (``task: weather``, ``decoder: raw``) whose one output holds
  logits over the card's ``classes`` (``conditions.CONDITIONS``: clear, fog, rain, snow, night);
  softmax -> (condition, confidence, probabilities).
- :class:`Restorer`: one method, either a model card (``decoder: image``: the ForkGAN generator, the
  curve baseline) run through :class:`~perception_pkg.engines.runner.ModelRunner` (output at the input's
  size), or a classical baseline from :mod:`.baselines` by name.
- :class:`Gate`: ``auto`` restores a frame when the classifier names a condition in ``conditions`` with
  at least ``min_confidence`` and, for fog, when its haze density (:func:`.baselines.haze_density`) is at
  least ``min_haze`` (restoring light fog was measured to cost detection AP); ``always`` restores every
  frame; ``off`` none.
- :class:`WeatherRestorer` ties them together: ``restorer(bgr) -> WeatherResult``. A frame the gate lets
  through is returned as the very array it came in (no copy): the node republishes it as it is.

Default cards: ``models/sim_weather/card.yaml`` (generator) and ``classifier_card.yaml`` beside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards import load_card
from perception_pkg.engines.runner import ModelRunner
from perception_pkg.paths import models_dir
from perception_pkg.weather.baselines import BASELINES, haze_density
from perception_pkg.weather.conditions import ADVERSE, CONDITIONS

DEFAULT_MODEL = "sim_weather/card.yaml"
DEFAULT_CLASSIFIER = "sim_weather/classifier_card.yaml"
MODES = ("auto", "always", "off")


def resolve_card(card: str | Path | None, default: str) -> Path:
    """Empty/None/"default" -> the shipped card; a relative path that does not exist from the working
    directory is looked up under ``models/``; a folder means its ``card.yaml``."""
    if card is None or str(card) in ("", "default"):
        return models_dir() / default
    path = Path(card).expanduser()
    if not path.is_absolute() and not path.exists():
        path = models_dir() / path
    return path / "card.yaml" if path.is_dir() else path


@dataclass(frozen=True)
class Classification:
    condition: str
    confidence: float
    probabilities: NDArray[np.float64]  # over ``classes``
    classes: tuple[str, ...] = CONDITIONS

    def probability(self, condition: str) -> float:
        return float(self.probabilities[self.classes.index(condition)]) if condition in self.classes else 0.0


def softmax(logits: NDArray) -> NDArray[np.float64]:
    z = np.asarray(logits, np.float64).reshape(-1)
    e = np.exp(z - z.max())
    return e / e.sum()


class ConditionClassifier:
    """``classifier(bgr) -> Classification`` from a raw-decoder card with class names."""

    def __init__(self, card: str | Path | None = None, backend: str = "auto", threads: int = 0) -> None:
        path = resolve_card(card, DEFAULT_CLASSIFIER)
        self.card = load_card(path)
        if self.card.task != "weather":
            raise ValueError(f"{path}: a condition classifier needs a weather card, not {self.card.task!r}")
        if self.card.decoder.type != "raw" or len(self.card.outputs) != 1:
            raise ValueError(f"{path}: a condition classifier has one output and decoder 'raw'")
        self.classes = tuple(self.card.classes)
        if not self.classes or "clear" not in self.classes:
            raise ValueError(f"{path}: classes must name the conditions, 'clear' among them")
        self.runner = ModelRunner(self.card, backend=backend, threads=threads or None)
        self.output = self.card.outputs[0].name

    def __call__(self, bgr: NDArray[np.uint8]) -> Classification:
        logits = self.runner(bgr)[self.output]
        p = softmax(logits)
        if p.size != len(self.classes):
            raise ValueError(f"classifier gave {p.size} logits for {len(self.classes)} classes")
        k = int(np.argmax(p))
        return Classification(self.classes[k], float(p[k]), p, self.classes)


class Restorer:
    """``restorer(bgr) -> bgr`` of the input's size: a card path (decoder ``image``) or a baseline name."""

    def __init__(self, method: str | Path | None = None, backend: str = "auto", threads: int = 0) -> None:
        self.runner: ModelRunner | None = None
        if isinstance(method, str) and method in BASELINES:
            self.name = method
            self.fn = BASELINES[method]
            return
        path = resolve_card(method, DEFAULT_MODEL)
        card = load_card(path)
        if card.task != "weather":
            raise ValueError(f"{path}: a restorer needs a weather card, not {card.task!r}")
        self.runner = ModelRunner(card, backend=backend, threads=threads or None)
        if self.runner.decoder.result != "image":
            raise ValueError(f"{path}: decoder {card.decoder.type!r} does not return an image")
        self.name = card.name
        self.card = card

    def __call__(self, bgr: NDArray[np.uint8]) -> NDArray[np.uint8]:
        if self.runner is None:
            return self.fn(bgr)
        return self.runner(bgr)[0]

    def describe(self) -> str:
        if self.runner is None:
            return f"baseline {self.name}"
        engine = self.runner.engine
        return f"{self.name} on {engine.describe() if hasattr(engine, 'describe') else engine}"


@dataclass(frozen=True)
class Gate:
    mode: str = "auto"
    conditions: tuple[str, ...] = ADVERSE
    min_confidence: float = 0.5
    min_haze: float = 0.0  # fog frames: restore only from this haze density on (0: any fog)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"gate mode must be one of {MODES}, got {self.mode!r}")
        unknown = sorted(set(self.conditions) - set(CONDITIONS))
        if unknown:
            raise ValueError(f"unknown conditions {unknown}; known: {list(CONDITIONS)}")

    @property
    def needs_classifier(self) -> bool:
        return self.mode == "auto"

    def decide(self, c: Classification | None, haze: float | None = None) -> bool:
        """Whether to restore a frame classified ``c`` (None: not classified) with haze density ``haze``
        (needed for a fog frame when ``min_haze`` > 0, see :meth:`needs_haze`; None: not measured)."""
        if self.mode != "auto":
            return self.mode == "always"
        if c is None or c.condition not in self.conditions or c.confidence < self.min_confidence:
            return False
        if c.condition == "fog" and self.min_haze > 0:
            return haze is not None and haze >= self.min_haze
        return True

    def needs_haze(self, c: Classification | None) -> bool:
        """Whether :meth:`decide` needs the frame's haze density: a fog frame the classifier passed."""
        return (
            self.mode == "auto"
            and self.min_haze > 0
            and c is not None
            and c.condition == "fog"
            and c.condition in self.conditions
            and c.confidence >= self.min_confidence
        )


@dataclass
class WeatherResult:
    image: NDArray[np.uint8]  # restored, or the input array itself when the gate passed the frame
    restored: bool
    classification: Classification | None
    timings: dict[str, float] = field(default_factory=dict)
    haze: float | None = None  # haze density, when the gate measured it


class WeatherRestorer:
    """Classifier (when the gate or ``classify`` asks for it) -> gate -> restorer."""

    def __init__(
        self,
        restorer: Restorer,
        gate: Gate,
        classifier: ConditionClassifier | None = None,
        classify: bool = True,
    ) -> None:
        if gate.needs_classifier and classifier is None:
            raise ValueError("gate mode 'auto' needs a condition classifier")
        self.restorer = restorer
        self.gate = gate
        self.classifier = classifier if (classify or gate.needs_classifier) else None

    def __call__(self, bgr: NDArray[np.uint8]) -> WeatherResult:
        timings: dict[str, float] = {}
        c = None
        t0 = time.perf_counter()
        if self.classifier is not None and self.gate.mode != "off":
            c = self.classifier(bgr)
            timings["classify"] = time.perf_counter() - t0
        haze = None
        if self.gate.needs_haze(c):
            th = time.perf_counter()
            haze = haze_density(bgr)
            timings["haze"] = time.perf_counter() - th
        if not self.gate.decide(c, haze):
            return WeatherResult(bgr, False, c, timings, haze)
        t1 = time.perf_counter()
        out = self.restorer(bgr)
        timings["restore"] = time.perf_counter() - t1
        return WeatherResult(out, True, c, timings, haze)
