"""TensorRT engine cache logic without TensorRT: keys, sidecars, rebuild reasons, never rebuilding a valid
engine, I/O validation, profiles from the card. The parts that need the library skip with a reason."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from perception_pkg.cards import CardError, parse_card
from perception_pkg.engines import (
    EngineCache,
    EngineError,
    EngineKey,
    ensure_engine,
    io_problem,
    profile_from_card,
)


def _card(
    shape: list[Any] | None = None, dynamic: dict[str, Any] | None = None, model: Path | None = None
) -> Any:
    spec: dict[str, Any] = {"name": "images", "shape": shape or [1, 3, 64, 64]}
    if dynamic:
        spec["dynamic"] = dynamic
    data = {"name": "net", "inputs": [spec], "outputs": [{"name": "out", "shape": [1, 10]}]}
    if model is not None:
        data["model"] = model.name
    return parse_card(data, base_dir=model.parent if model else ".")


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not really onnx, but hashed all the same")
    return path


def _key(onnx_file: Path, **changes: Any) -> EngineKey:
    args = {"precision": "fp16", "tensorrt_version": "10.3.0", "compute_capability": (8, 7)}
    args.update(changes)
    return EngineKey.make(
        onnx_file,
        args["precision"],
        profile_from_card(_card()),
        args["tensorrt_version"],
        args["compute_capability"],
    )


class FakeTRT:
    """Stands in for build / deserialize / inspect; counts builds."""

    def __init__(self, io_ok: bool = True, deserialize_ok: bool = True) -> None:
        self.builds = 0
        self.io_ok = io_ok
        self.deserialize_ok = deserialize_ok

    def build(self) -> bytes:
        self.builds += 1
        return f"engine-{self.builds}".encode()

    def deserialize(self, blob: bytes) -> dict[str, Any] | None:
        if not self.deserialize_ok and blob.startswith(b"engine-") and self.builds == 0:
            return None  # the cached plan is refused, a fresh one works
        return {"blob": blob}

    def validate(self, engine: dict[str, Any]) -> str | None:
        return None if self.io_ok else "output 'out' axis 1 is 11 in the engine, 10 in the card"


def _ensure(cache: EngineCache, key: EngineKey, fake: FakeTRT, force: bool = False) -> tuple[Any, bool]:
    return ensure_engine(
        cache,
        "net",
        key,
        fake.build,
        fake.deserialize,
        fake.validate,
        describe_io=lambda e: {"out": {"mode": "output"}},
        force_rebuild=force,
    )


def test_key_covers_onnx_hash_precision_profile_version_and_gpu(onnx_file: Path) -> None:
    base = _key(onnx_file)
    assert len(base.onnx_sha256) == 64
    assert base.compute_capability == "8.7"
    variants = [
        _key(onnx_file, precision="int8"),
        _key(onnx_file, tensorrt_version="10.7.0"),
        _key(onnx_file, compute_capability=(8, 6)),
        EngineKey.make(onnx_file, "fp16", profile_from_card(_card([1, 3, 64, 96])), "10.3.0", (8, 7)),
    ]
    digests = {base.digest(), *(v.digest() for v in variants)}
    assert len(digests) == 5
    onnx_file.write_bytes(b"retrained weights")
    assert _key(onnx_file).onnx_sha256 != base.onnx_sha256
    assert EngineKey.from_dict(json.loads(json.dumps(base.as_dict()))) == base


def test_differences_name_each_changed_field(onnx_file: Path) -> None:
    old = _key(onnx_file)
    new = _key(onnx_file, tensorrt_version="10.7.0", compute_capability=(8, 6))
    assert old.differences(new) == ["tensorrt_version 10.3.0 -> 10.7.0", "compute_capability 8.7 -> 8.6"]


def test_first_use_builds_and_stores_engine_sidecar_next_to_timing_cache(
    tmp_path: Path, onnx_file: Path
) -> None:
    cache = EngineCache(tmp_path / "engines")
    key = _key(onnx_file)
    fake = FakeTRT()
    engine, built = _ensure(cache, key, fake)
    assert built and fake.builds == 1 and engine == {"blob": b"engine-1"}
    entry = cache.entry("net", "fp16")
    assert entry.engine.read_bytes() == b"engine-1"
    meta = json.loads(entry.sidecar.read_text())
    assert meta["key"]["tensorrt_version"] == "10.3.0" and meta["digest"] == key.digest()
    cache.write_timing_cache(key, b"timings")
    assert cache.timing_cache_path(key).parent == entry.engine.parent
    assert cache.timing_cache_path(key).name == "trt10.3.0-sm87.timing.cache"


def test_valid_cached_engine_is_never_rebuilt(tmp_path: Path, onnx_file: Path, caplog: Any) -> None:
    cache = EngineCache(tmp_path)
    key = _key(onnx_file)
    fake = FakeTRT()
    _ensure(cache, key, fake)
    caplog.set_level(logging.INFO)
    for _ in range(3):
        engine, built = _ensure(cache, key, fake)
        assert not built and engine == {"blob": b"engine-1"}
    assert fake.builds == 1
    assert "using cached TensorRT engine" in caplog.text


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"tensorrt_version": "10.7.0"}, "tensorrt_version 10.3.0 -> 10.7.0"),
        ({"compute_capability": (7, 2)}, "compute_capability 8.7 -> 7.2"),
        ({"precision": "fp16", "onnx": True}, "model.onnx changed"),
    ],
)
def test_stale_engine_is_rebuilt_with_a_log_line_saying_why(
    tmp_path: Path, onnx_file: Path, caplog: Any, change: dict[str, Any], reason: str
) -> None:
    cache = EngineCache(tmp_path)
    fake = FakeTRT()
    _ensure(cache, _key(onnx_file), fake)
    if change.pop("onnx", False):
        onnx_file.write_bytes(b"new model")
    caplog.set_level(logging.WARNING)
    _, built = _ensure(cache, _key(onnx_file, **change), fake)
    assert built and fake.builds == 2
    assert "cached engine is stale" in caplog.text and reason in caplog.text


def test_engine_tensorrt_refuses_is_rebuilt(tmp_path: Path, onnx_file: Path, caplog: Any) -> None:
    cache = EngineCache(tmp_path)
    key = _key(onnx_file)
    cache.store("net", key, b"engine-from-another-jetpack")
    fake = FakeTRT(deserialize_ok=False)
    caplog.set_level(logging.WARNING)
    _, built = _ensure(cache, key, fake)
    assert built
    assert "could not deserialize" in caplog.text


def test_engine_whose_io_disagrees_with_card_is_rebuilt_and_a_bad_build_fails(
    tmp_path: Path, onnx_file: Path, caplog: Any
) -> None:
    cache = EngineCache(tmp_path)
    key = _key(onnx_file)
    _ensure(cache, key, FakeTRT())
    caplog.set_level(logging.WARNING)
    with pytest.raises(EngineError, match="freshly built engine does not match the card"):
        _ensure(cache, key, FakeTRT(io_ok=False))
    assert "its I/O does not match the card: output 'out' axis 1" in caplog.text


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_engine_without_trustworthy_sidecar_is_rebuilt(
    tmp_path: Path, onnx_file: Path, caplog: Any, damage: str
) -> None:
    cache = EngineCache(tmp_path)
    key = _key(onnx_file)
    _ensure(cache, key, FakeTRT())
    sidecar = cache.entry("net", "fp16").sidecar
    if damage == "missing":
        sidecar.unlink()
    else:
        sidecar.write_text("{not json")
    path, reason = cache.lookup("net", key)
    assert path is None and ("missing" in reason or "unreadable" in reason)
    fake = FakeTRT()
    _, built = _ensure(cache, key, fake)
    assert built and fake.builds == 1


def test_force_rebuild_rebuilds_a_valid_engine(tmp_path: Path, onnx_file: Path) -> None:
    cache = EngineCache(tmp_path)
    fake = FakeTRT()
    _ensure(cache, _key(onnx_file), fake)
    _, built = _ensure(cache, _key(onnx_file), fake, force=True)
    assert built and fake.builds == 2


def _io(shape: list[int], profile: list[list[int]], out: list[int]) -> dict[str, Any]:
    return {
        "images": {"mode": "input", "shape": shape, "profile": profile},
        "out": {"mode": "output", "shape": out},
    }


def test_io_problem_accepts_matching_engine_and_names_mismatches() -> None:
    card = _card(["batch", 3, 64, 64], {"batch": [1, 2, 8]})
    prof = profile_from_card(card)
    good = _io([-1, 3, 64, 64], [[1, 3, 64, 64], [2, 3, 64, 64], [8, 3, 64, 64]], [1, 10])
    assert io_problem(card, good, prof) is None
    bad_profile = _io([-1, 3, 64, 64], [[1, 3, 64, 64], [1, 3, 64, 64], [4, 3, 64, 64]], [1, 10])
    assert "profile" in io_problem(card, bad_profile, prof)
    bad_shape = _io([-1, 3, 64, 32], [[1, 3, 64, 32]] * 3, [1, 10])
    assert io_problem(card, bad_shape, prof) == "input 'images' axis 3 is 32 in the engine, 64 in the card"
    renamed = {"input": good["images"], "out": good["out"]}
    assert "engine inputs ['input']" in io_problem(card, renamed, prof)
    assert "lacks outputs ['out']" in io_problem(card, {"images": good["images"]}, prof)


def test_profile_from_card_static_dynamic_and_max_batch() -> None:
    static = profile_from_card(_card())
    assert not static.dynamic
    assert static["images"].min == static["images"].max == (1, 3, 64, 64)
    card = _card(["batch", 3, 64, 64], {"batch": [1, 4, 16]})
    prof = profile_from_card(card)
    assert (prof["images"].min, prof["images"].opt, prof["images"].max) == (
        (1, 3, 64, 64),
        (4, 3, 64, 64),
        (16, 3, 64, 64),
    )
    narrowed = profile_from_card(card, max_batch=2)
    assert narrowed["images"].opt == (2, 3, 64, 64) and narrowed["images"].max == (2, 3, 64, 64)
    with pytest.raises(CardError, match="batch is fixed to 1"):
        profile_from_card(_card(), max_batch=8)


def test_tensorrt_backend_without_tensorrt_names_what_is_missing() -> None:
    from perception_pkg.engines.tensorrt_backend import tensorrt_problem

    problem = tensorrt_problem()
    if problem is None:
        pytest.skip("TensorRT is installed here; this checks the message on machines without it")
    assert problem.startswith(
        ("tensorrt not installed", "tensorrt failed", "pycuda", "CUDA driver", "no CUDA", "TensorRT ")
    )


@pytest.mark.tensorrt
def test_tensorrt_engine_builds_caches_and_runs(tmp_path: Path) -> None:
    from perception_pkg.engines.tensorrt_backend import tensorrt_problem

    problem = tensorrt_problem()
    if problem is not None:
        pytest.skip(
            problem if problem.startswith("tensorrt not installed") else f"tensorrt not usable: {problem}"
        )
    pytest.importorskip("torch")
    import numpy as np

    from perception_pkg.cards import load_card
    from perception_pkg.engines.onnxruntime_backend import OrtEngine
    from perception_pkg.engines.tensorrt_backend import TensorRTEngine
    from perception_pkg.training.formats import topdown_card, write_model
    from perception_pkg.training.models import TinyTopDown

    card = load_card(
        write_model(
            TinyTopDown(5), topdown_card("td", keypoints=[f"k{i}" for i in range(5)]), tmp_path / "td"
        )
    )
    x = np.random.default_rng(0).normal(size=(1, 3, 256, 192)).astype(np.float32)
    with TensorRTEngine(card, precision="fp32", cache_dir=tmp_path / "cache") as trt_engine:
        assert trt_engine.built
        got = trt_engine.infer({"images": x})["heatmaps"]
    again = TensorRTEngine(card, precision="fp32", cache_dir=tmp_path / "cache")
    assert not again.built
    ref = OrtEngine(card).infer({"images": x})["heatmaps"]
    assert np.abs(got - ref).max() < 1e-3 * (ref.max() - ref.min())
