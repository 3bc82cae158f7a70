"""TensorRT engine cache: key, storage next to a timing cache, validation, and build-only-when-needed.

What hurt users of other stacks: engines that fail after a TensorRT/JetPack upgrade ("version tag does
not match"), engines rebuilt on every start, and stale engines after a model update. So:

- the key is ONNX sha256 + precision + optimisation profile + TensorRT version + GPU compute capability;
- ``<name>.<precision>.engine`` sits with a ``.json`` sidecar holding that key and the engine's I/O; the
  timing cache for the same TensorRT version and GPU sits beside them;
- on load the sidecar key must equal the wanted key, the engine must deserialize and its I/O must match
  the card; anything else rebuilds, with a log line naming what changed;
- a valid cached engine is never rebuilt.

Nothing here imports TensorRT: the build, deserialize and I/O-inspection steps are passed in, so every
decision is testable without a GPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from perception_pkg.cards.checksum import file_sha256
from perception_pkg.cards.schema import ModelCard
from perception_pkg.engines.base import EngineError
from perception_pkg.engines.profiles import ShapeProfile

log = logging.getLogger(__name__)

T = TypeVar("T")
SIDECAR_VERSION = 1


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    precision: str
    profile: tuple[tuple[Any, ...], ...]
    tensorrt_version: str
    compute_capability: str

    @classmethod
    def make(
        cls,
        onnx_path: str | Path,
        precision: str,
        profile: ShapeProfile,
        tensorrt_version: str,
        compute_capability: str | tuple[int, int],
    ) -> EngineKey:
        if isinstance(compute_capability, tuple):
            compute_capability = f"{compute_capability[0]}.{compute_capability[1]}"
        return cls(
            file_sha256(onnx_path),
            precision,
            _freeze(profile.as_key()),
            str(tensorrt_version),
            str(compute_capability),
        )

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["profile"] = _thaw(self.profile)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EngineKey:
        return cls(
            str(d["onnx_sha256"]),
            str(d["precision"]),
            _freeze(d["profile"]),
            str(d["tensorrt_version"]),
            str(d["compute_capability"]),
        )

    def digest(self) -> str:
        blob = json.dumps(self.as_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def differences(self, other: EngineKey) -> list[str]:
        """Human-readable ``field: cached -> wanted`` for each field that differs."""
        out = []
        for name, mine in self.as_dict().items():
            theirs = other.as_dict()[name]
            if mine != theirs:
                if name == "onnx_sha256":
                    out.append(f"model.onnx changed (sha256 {mine[:12]} -> {theirs[:12]})")
                else:
                    out.append(f"{name} {mine} -> {theirs}")
        return out


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file and rename, so a crash mid-write never leaves a truncated engine behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def default_cache_dir(card: ModelCard) -> Path:
    """``<model dir>/engines`` when writable (a checkout), else the user cache (read-only share dirs)."""
    local = card.directory / "engines"
    probe = local if local.exists() else card.directory
    if os.access(probe, os.W_OK):
        return local
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "perception_pkg" / "engines" / card.name


@dataclass(frozen=True)
class CacheEntry:
    engine: Path
    sidecar: Path


class EngineCache:
    """Engines for one cache folder: ``<name>.<precision>.engine`` + ``.engine.json`` + timing caches."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def entry(self, name: str, precision: str) -> CacheEntry:
        engine = self.directory / f"{name}.{precision}.engine"
        return CacheEntry(engine, engine.with_name(engine.name + ".json"))

    def timing_cache_path(self, key: EngineKey) -> Path:
        """Timing caches are per TensorRT version and GPU, shared by all models in the folder."""
        cc = key.compute_capability.replace(".", "")
        return self.directory / f"trt{key.tensorrt_version}-sm{cc}.timing.cache"

    def lookup(self, name: str, key: EngineKey) -> tuple[Path | None, str]:
        """The cached engine file when its sidecar matches ``key``, else None and the reason."""
        entry = self.entry(name, key.precision)
        if not entry.engine.is_file():
            return None, f"no cached engine at {entry.engine}"
        try:
            meta = json.loads(entry.sidecar.read_text())
            cached = EngineKey.from_dict(meta["key"])
        except FileNotFoundError:
            return None, f"{entry.sidecar.name} is missing, so the engine's origin is unknown"
        except (ValueError, KeyError, TypeError) as exc:
            return None, f"{entry.sidecar.name} is unreadable ({exc})"
        if cached != key:
            return None, "cached engine is stale: " + "; ".join(cached.differences(key))
        return entry.engine, "cached engine matches"

    def store(
        self, name: str, key: EngineKey, engine_bytes: bytes, io: Mapping[str, Any] | None = None
    ) -> Path:
        entry = self.entry(name, key.precision)
        # sidecar first removed, written last: an engine without a matching sidecar is never trusted
        entry.sidecar.unlink(missing_ok=True)
        _atomic_write(entry.engine, engine_bytes)
        meta = {
            "version": SIDECAR_VERSION,
            "key": key.as_dict(),
            "digest": key.digest(),
            "io": io or {},
            "bytes": len(engine_bytes),
        }
        _atomic_write(entry.sidecar, json.dumps(meta, indent=2, sort_keys=True).encode())
        return entry.engine

    def read_timing_cache(self, key: EngineKey) -> bytes:
        path = self.timing_cache_path(key)
        return path.read_bytes() if path.is_file() else b""

    def write_timing_cache(self, key: EngineKey, data: bytes) -> None:
        if data:
            _atomic_write(self.timing_cache_path(key), data)


def ensure_engine(
    cache: EngineCache,
    name: str,
    key: EngineKey,
    build: Callable[[], bytes],
    deserialize: Callable[[bytes], T | None],
    validate: Callable[[T], str | None],
    describe_io: Callable[[T], Mapping[str, Any]] | None = None,
    force_rebuild: bool = False,
) -> tuple[T, bool]:
    """A ready engine for ``key``: the cached one if valid, else freshly built and stored.

    ``deserialize`` returns None (or raises) when TensorRT refuses the plan; ``validate`` returns None
    when the engine's I/O matches the card, else the mismatch. Returns (engine, built).
    """
    path, reason = (None, "rebuild requested") if force_rebuild else cache.lookup(name, key)
    if path is not None:
        engine: T | None
        try:
            engine = deserialize(path.read_bytes())
        except Exception as exc:  # TensorRT raises or logs and returns None, depending on the failure
            engine, why = None, f"{type(exc).__name__}: {exc}"
        else:
            why = "TensorRT could not deserialize it (built by another TensorRT version or GPU?)"
        if engine is not None:
            problem = validate(engine)
            if problem is None:
                log.info("%s: using cached TensorRT engine %s", name, path)
                return engine, False
            why = f"its I/O does not match the card: {problem}"
        reason = f"cached engine {path.name} rejected: {why}"
    log.warning("%s: building TensorRT %s engine (%s); this can take minutes", name, key.precision, reason)
    blob = build()
    engine = deserialize(blob)
    if engine is None:
        raise EngineError(f"{name}: TensorRT built an engine it cannot deserialize")
    problem = validate(engine)
    if problem is not None:
        raise EngineError(f"{name}: freshly built engine does not match the card: {problem}")
    stored = cache.store(name, key, blob, describe_io(engine) if describe_io else None)
    log.info("%s: stored TensorRT engine %s (%d bytes)", name, stored, len(blob))
    return engine, True


def io_problem(card: ModelCard, io: Mapping[str, Mapping[str, Any]], profile: ShapeProfile) -> str | None:
    """Compare an engine's I/O (as read from TensorRT) with the card and profile; None when they agree.

    ``io[name]`` has ``mode`` ("input"/"output"), ``shape`` (-1 for dynamic dims) and, for inputs,
    ``profile`` ([min, opt, max] of profile 0).
    """
    inputs = {n for n, v in io.items() if v.get("mode") == "input"}
    outputs = {n for n, v in io.items() if v.get("mode") == "output"}
    want_in = {s.name for s in card.inputs}
    if inputs != want_in:
        return f"engine inputs {sorted(inputs)} != card inputs {sorted(want_in)}"
    missing = [o.name for o in card.outputs if o.name not in outputs]
    if missing:
        return f"engine lacks outputs {missing} (has {sorted(outputs)})"
    for spec in card.inputs:
        shape = tuple(io[spec.name]["shape"])
        if len(shape) != len(spec.shape):
            return f"input {spec.name!r} has rank {len(shape)} in the engine, {len(spec.shape)} in the card"
        for axis, (e, c) in enumerate(zip(shape, spec.shape, strict=True)):
            if isinstance(c, int) and e not in (-1, c):
                return f"input {spec.name!r} axis {axis} is {e} in the engine, {c} in the card"
        prof = io[spec.name].get("profile")
        want = profile[spec.name]
        if prof is not None and [tuple(p) for p in prof] != [want.min, want.opt, want.max]:
            return (
                f"input {spec.name!r} profile {[list(p) for p in prof]} != "
                f"wanted {[list(want.min), list(want.opt), list(want.max)]}"
            )
    for out in card.outputs:
        if out.shape is None:
            continue
        shape = tuple(io[out.name]["shape"])
        if len(shape) != len(out.shape):
            return f"output {out.name!r} has rank {len(shape)} in the engine, {len(out.shape)} in the card"
        for axis, (e, c) in enumerate(zip(shape, out.shape, strict=True)):
            if isinstance(c, int) and e not in (-1, c):
                return f"output {out.name!r} axis {axis} is {e} in the engine, {c} in the card"
    return None
