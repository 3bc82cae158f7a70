"""Settings dataclasses: the one source of every node parameter's default, type, range and docs.

Each capability declares a frozen dataclass whose fields are made with :func:`setting`. The same class
validates a node's ROS parameters (``ros/params.py`` declares one parameter per field) and a section of
a params file read by replay, so a bad value or a typo fails the same way in both: one line naming the
parameter, what was expected and, for an unknown name, the closest valid one. ``config/perception.yaml``
is checked against these classes by a test (every key known, every default equal).

Kept free of rclpy: validation is plain Python on plain values.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

S = TypeVar("S")

# ROS parameters every node accepts besides its declared ones (rclpy declares use_sim_time itself)
ROS_BUILTIN_PARAMETERS = ("use_sim_time",)


class ConfigError(ValueError):
    """A parameter has a wrong name, type or value. The message names the node and the parameter."""


def setting(
    default: Any,
    description: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: Sequence[Any] | None = None,
    length: int | None = None,
    param: str | None = None,
) -> Any:
    """A dataclass field with its parameter docs and constraints. ``param`` is the parameter name when
    it differs from the field name (dotted names such as ``input_qos.reliability``)."""
    meta = {
        "description": description,
        "minimum": minimum,
        "maximum": maximum,
        "choices": tuple(choices) if choices is not None else None,
        "length": length,
        "param": param,
    }
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Spec:
    """One parameter of a Settings class."""

    field: str
    param: str
    default: Any
    description: str
    kind: type
    minimum: float | None
    maximum: float | None
    choices: tuple[Any, ...] | None
    length: int | None

    def validate(self, value: Any, where: str) -> Any:
        """``value`` checked and normalised (int -> float for floats, list -> tuple for sequences)."""
        kind = self.kind
        if value is None or (isinstance(value, bool) and kind is not bool):
            raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")
        if kind is float:
            if not isinstance(value, (int, float)):
                raise ConfigError(f"{where}: expected float, got {type(value).__name__} {value!r}")
            value = float(value)
        elif kind is tuple:
            if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
            value = tuple(value)
            element = type(self.default[0]) if self.default else None
            if element is float:
                if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                    raise ConfigError(f"{where}: expected a list of numbers, got {list(value)!r}")
                value = tuple(float(v) for v in value)
            if self.length is not None and len(value) != self.length:
                raise ConfigError(
                    f"{where}: expected {self.length} values, got {len(value)}: {list(value)!r}"
                )
        elif not isinstance(value, kind):
            raise ConfigError(f"{where}: expected {kind.__name__}, got {type(value).__name__} {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{where}: expected one of {list(self.choices)}, got {value!r}")
        if kind in (int, float) and isinstance(value, float) and math.isnan(value):
            raise ConfigError(f"{where}: expected a number, got NaN")
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"{where}: expected >= {self.minimum}, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"{where}: expected <= {self.maximum}, got {value!r}")
        return value


def specs(cls: type) -> list[Spec]:
    """The parameters of a Settings dataclass, in field order."""
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if "description" not in meta:
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with setting()")
        out.append(
            Spec(
                field=f.name,
                param=meta["param"] or f.name,
                default=f.default,
                description=meta["description"],
                kind=type(f.default),
                minimum=meta["minimum"],
                maximum=meta["maximum"],
                choices=meta["choices"],
                length=meta["length"],
            )
        )
    return out


def check_known(names: Iterable[str], known: Iterable[str], node: str) -> None:
    """ConfigError for the first name not in ``known``, with the closest valid name when there is one."""
    known = sorted(set(known))
    for name in names:
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else f"; valid: {', '.join(known)}"
        raise ConfigError(f"parameter '{node}.{name}' is not a parameter of node '{node}'{hint}")


def from_params(cls: type[S], params: Mapping[str, Any], node: str, *, also_known: Iterable[str] = ()) -> S:
    """An instance of Settings ``cls`` from parameter values by parameter name (missing ones take their
    defaults). Unknown names (other than ``also_known`` and ROS's built-in ones) are a ConfigError."""
    spec = specs(cls)
    check_known(params, [s.param for s in spec] + list(also_known) + list(ROS_BUILTIN_PARAMETERS), node)
    values = {
        s.field: s.validate(params[s.param], f"parameter '{node}.{s.param}'")
        for s in spec
        if s.param in params
    }
    try:
        return cls(**values)
    except ConfigError:
        raise
    except ValueError as exc:  # a Settings class's own cross-field check (__post_init__)
        raise ConfigError(f"node '{node}': {exc}") from exc


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML mappings as ROS sees them: ``{input_qos: {depth: 2}}`` -> ``{"input_qos.depth": 2}``."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


@dataclass(frozen=True)
class NodeSettings:
    """Parameters every perception node has, besides its capability's Settings.

    Sensor inputs default to keep-last-1 (the newest frame is the one worth processing) with
    ``auto`` reliability: reliable while every publisher of the input offers reliable, best effort as
    soon as one offers best effort (the subscription is re-created when that changes), so it matches
    any driver and, where the driver offers it, lost fragments of large frames are repaired (a 1 M-point
    cloud from a reliable publisher on Fast DDS defaults: 3 of 10 arrived best effort, 10 of 10
    reliable; benchmarks/bench_pubsub.py). Results default to reliable so that recorders and slow
    consumers see every one.
    """

    input_reliability: str = setting(
        "auto",
        "input QoS reliability: auto (reliable if all publishers offer it), best_effort or reliable",
        choices=("auto", "best_effort", "reliable"),
        param="input_qos.reliability",
    )
    input_depth: int = setting(
        1, "input QoS keep-last depth", minimum=1, maximum=1000, param="input_qos.depth"
    )
    output_reliability: str = setting(
        "reliable",
        "output QoS reliability",
        choices=("best_effort", "reliable"),
        param="output_qos.reliability",
    )
    output_depth: int = setting(
        10, "output QoS keep-last depth", minimum=1, maximum=1000, param="output_qos.depth"
    )
    diagnostics_period_s: float = setting(1.0, "seconds between /diagnostics messages", minimum=0.05)
    stats_window: int = setting(100, "most frames kept for the rate and latency percentiles", minimum=2)
    log_throttle_s: float = setting(5.0, "at most one bad-input log line per this many seconds", minimum=0.0)
    status_window_s: float = setting(
        5.0,
        "seconds the diagnostics level, rates and latencies describe (totals are counters since start)",
        minimum=0.1,
    )
    input_timeout_s: float = setting(
        1.0,
        "WARN 'no input on TOPIC' after this long without a main-input message (or 5 frame periods, "
        "if longer); also the stamp gap beyond which the loss estimate sees a pause, not loss",
        minimum=0.05,
    )


def read_params_file(path: str | Path, node: str) -> dict[str, Any]:
    """The parameters a ROS 2 params file gives ``node`` (flattened, as rclpy would see them): the
    ``/**`` wildcard section first, then ``node`` or ``/node``. A file that is not a params file is a
    ConfigError naming it; ``yaml.safe_load`` only, so a file cannot construct objects."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"params file {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"params file {path}: expected a mapping of node names, got {type(data).__name__}")
    out: dict[str, Any] = {}
    for section in ("/**", node, f"/{node}"):
        body = data.get(section)
        if body is None:
            continue
        params = body.get("ros__parameters") if isinstance(body, Mapping) else None
        if not isinstance(params, Mapping):
            raise ConfigError(f"params file {path}: section '{section}' needs a 'ros__parameters' mapping")
        out.update(flatten(params))
    return out
