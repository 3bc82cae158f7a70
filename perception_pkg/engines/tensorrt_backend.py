"""TensorRT 10 + pycuda backend: build from ONNX (FP32/FP16/INT8), cache, run on a CUDA stream.

Written against the TensorRT 10 Python API (name-based tensors: ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``). ``tensorrt`` and ``pycuda`` are imported only when an
engine is built or loaded; their absence raises :class:`BackendUnavailable` with the reason, which
backend selection turns into a fallback message. Cache decisions live in :mod:`.trt_cache`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.checksum import verify_model
from perception_pkg.cards.schema import PRECISIONS, ModelCard
from perception_pkg.engines.base import BackendUnavailable, Engine, EngineError, TensorSpec
from perception_pkg.engines.profiles import ShapeProfile, profile_from_card
from perception_pkg.engines.trt_cache import (
    EngineCache,
    EngineKey,
    default_cache_dir,
    ensure_engine,
    io_problem,
)

log = logging.getLogger(__name__)

MIN_TENSORRT_MAJOR = 10


@dataclass(frozen=True)
class TensorRTEnvironment:
    trt: Any
    cuda: Any
    version: str
    compute_capability: tuple[int, int]
    device_name: str


def tensorrt_problem() -> str | None:
    """None when TensorRT 10 + pycuda + a CUDA GPU are usable here, else why not (cheap, no build)."""
    try:
        load_environment()
    except BackendUnavailable as exc:
        return exc.reason
    return None


def load_environment(device_id: int = 0) -> TensorRTEnvironment:
    """Import tensorrt and pycuda and look at the GPU; BackendUnavailable names what is missing."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailable("tensorrt", f"tensorrt not installed: {exc}") from exc
    except Exception as exc:  # the PyPI stub raises at import when it could not fetch the real wheel
        raise BackendUnavailable("tensorrt", f"tensorrt failed to import: {exc}") from exc
    version = str(getattr(trt, "__version__", "0"))
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = 0
    if major < MIN_TENSORRT_MAJOR:
        raise BackendUnavailable(
            "tensorrt", f"TensorRT {version} found, {MIN_TENSORRT_MAJOR}.x or newer needed"
        )
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise BackendUnavailable("tensorrt", f"pycuda not installed: {exc}") from exc
    except Exception as exc:
        raise BackendUnavailable("tensorrt", f"pycuda failed to import: {exc}") from exc
    try:
        cuda.init()
        count = cuda.Device.count()
    except Exception as exc:
        raise BackendUnavailable("tensorrt", f"CUDA driver not usable: {exc}") from exc
    if count <= device_id:
        raise BackendUnavailable("tensorrt", f"no CUDA device {device_id} ({count} found)")
    device = cuda.Device(device_id)
    return TensorRTEnvironment(trt, cuda, version, tuple(device.compute_capability()), device.name())


class _Context:
    """The device's primary CUDA context, pushed around every call: ROS executors call from many threads."""

    def __init__(self, cuda: Any, device_id: int) -> None:
        self._ctx = cuda.Device(device_id).retain_primary_context()

    def __enter__(self) -> None:
        self._ctx.push()

    def __exit__(self, *exc: Any) -> None:
        self._ctx.pop()

    def release(self) -> None:
        self._ctx.detach()


def _volume(shape: Iterable[int]) -> int:
    out = 1
    for d in shape:
        out *= int(d)
    return out


def _make_calibrator(env: TensorRTEnvironment, batches: Iterable[NDArray], cache_file: Path) -> Any:
    """An IInt8EntropyCalibrator2 feeding ``batches`` (numpy, fixed shape) through one device buffer.

    The class is defined here because it must subclass a TensorRT type, importable only with TensorRT.
    """
    trt, cuda = env.trt, env.cuda

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._it: Iterator[NDArray] = iter(batches)
            self._device: Any = None
            self._batch_size = 1
            self._count = 0

        def get_batch_size(self) -> int:
            return self._batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            try:
                batch = np.ascontiguousarray(next(self._it))
            except StopIteration:
                log.info("INT8 calibration used %d batches", self._count)
                return None
            if self._device is None:
                self._device = cuda.mem_alloc(batch.nbytes)
                self._batch_size = batch.shape[0]
            cuda.memcpy_htod(self._device, batch)
            self._count += 1
            return [int(self._device)]

        def read_calibration_cache(self) -> bytes | None:
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache_file.write_bytes(bytes(cache))

    return EntropyCalibrator()


def build_serialized_engine(
    env: TensorRTEnvironment,
    onnx_path: Path,
    profile: ShapeProfile,
    precision: str,
    cache: EngineCache,
    key: EngineKey,
    calibrator: Any = None,
    workspace_bytes: int = 1 << 30,
) -> bytes:
    """Parse the ONNX, set precision flags and the profile, build with the shared timing cache."""
    trt = env.trt
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    opt = builder.create_optimization_profile()
    for p in profile.inputs:
        opt.set_shape(p.name, p.min, p.opt, p.max)
    config.add_optimization_profile(opt)
    if precision in ("fp16", "int8"):
        if not getattr(builder, "platform_has_fast_fp16", True):  # deprecated in later 10.x releases
            log.warning("this GPU has no fast FP16; building anyway")
        config.set_flag(trt.BuilderFlag.FP16)  # INT8 engines keep FP16 for layers left unquantised
    if precision == "int8":
        if calibrator is None:
            raise EngineError(
                "INT8 needs calibration data: --calib-images DIR or --calib-bag BAG --calib-topic T"
            )
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        config.set_calibration_profile(opt)
    timing = config.create_timing_cache(cache.read_timing_cache(key))
    config.set_timing_cache(timing, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT failed to build {onnx_path} ({precision}); see the TensorRT log above")
    cache.write_timing_cache(key, bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(serialized))


def engine_io(trt: Any, engine: Any) -> dict[str, dict[str, Any]]:
    """Name -> mode, shape (-1 = dynamic), numpy dtype and (inputs) profile 0 of a deserialized engine."""
    io: dict[str, dict[str, Any]] = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        entry: dict[str, Any] = {
            "mode": "input" if is_input else "output",
            "shape": [int(d) for d in engine.get_tensor_shape(name)],
            "dtype": np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name,
        }
        if is_input:
            entry["profile"] = [[int(d) for d in s] for s in engine.get_tensor_profile_shape(name, 0)]
        io[name] = entry
    return io


class TensorRTEngine(Engine):
    """A cached TensorRT engine for the card, built on first use; runs on its own CUDA stream.

    ``precision``: fp32/fp16/int8 (default the card's preferred); ``calibration``: numpy batches for INT8
    (see :class:`~perception_pkg.engines.calibration.CalibrationBatches`); ``max_batch`` widens a dynamic
    batch dimension's profile.
    """

    backend = "tensorrt"

    def __init__(
        self,
        card: ModelCard,
        precision: str | None = None,
        cache_dir: str | Path | None = None,
        device_id: int = 0,
        calibration: Iterable[NDArray] | None = None,
        max_batch: int | None = None,
        workspace_mb: int = 1024,
        rebuild: bool = False,
    ) -> None:
        super().__init__(card)
        verify_model(card)  # build from the model the card describes, or not at all (CardError)
        precision = precision or card.precision.preferred
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision not in card.precision.supported:
            log.warning(
                "%s: precision %s is not in the card's supported %s",
                card.name,
                precision,
                list(card.precision.supported),
            )
        env = load_environment(device_id)
        self.env = env
        self.precision = precision
        self._ctx = _Context(env.cuda, device_id)
        self.profile = profile_from_card(card, max_batch)
        self.cache = EngineCache(cache_dir or default_cache_dir(card))
        key = EngineKey.make(card.model_path, precision, self.profile, env.version, env.compute_capability)
        self.key = key
        trt = env.trt
        with self._ctx:
            runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            self._runtime = runtime

            def build() -> bytes:
                calibrator = None
                if precision == "int8":
                    cal_file = self.cache.directory / f"{card.name}.int8.calibration"
                    if calibration is None and not cal_file.is_file():
                        raise EngineError("INT8 needs calibration images or a calibration cache")
                    calibrator = _make_calibrator(env, calibration or [], cal_file)
                return build_serialized_engine(
                    env,
                    card.model_path,
                    self.profile,
                    precision,
                    self.cache,
                    key,
                    calibrator,
                    workspace_mb << 20,
                )

            self.engine, self.built = ensure_engine(
                self.cache,
                card.name,
                key,
                build,
                deserialize=runtime.deserialize_cuda_engine,
                validate=lambda e: io_problem(card, engine_io(trt, e), self.profile),
                describe_io=lambda e: engine_io(trt, e),
                force_rebuild=rebuild,
            )
            self.io = engine_io(trt, self.engine)
            self.context = self.engine.create_execution_context()
            self.stream = env.cuda.Stream()
            self._allocate()
        self._outputs = tuple(
            TensorSpec(
                o.name,
                o.shape if o.shape is not None else tuple(self.io[o.name]["shape"]),
                self.io[o.name]["dtype"],
            )
            for o in card.outputs
        )

    def _allocate(self) -> None:
        """Device and pinned host buffers sized for the profile's max shapes; addresses set once."""
        cuda = self.env.cuda
        for p in self.profile.inputs:
            self.context.set_input_shape(p.name, p.max)
        self._device: dict[str, Any] = {}
        self._host: dict[str, NDArray] = {}
        for name, entry in self.io.items():
            shape = (
                self.profile[name].max
                if entry["mode"] == "input"
                else tuple(self.context.get_tensor_shape(name))
            )
            if any(d < 0 for d in shape):
                raise EngineError(
                    f"{self.card.name}: output {name!r} has data-dependent shape {shape}; not supported"
                )
            dtype = np.dtype(entry["dtype"])
            count = max(_volume(shape), 1)
            self._host[name] = cuda.pagelocked_empty(count, dtype)
            self._device[name] = cuda.mem_alloc(count * dtype.itemsize)
            self.context.set_tensor_address(name, int(self._device[name]))

    @property
    def output_specs(self) -> tuple[TensorSpec, ...]:
        return self._outputs

    def describe(self) -> str:
        major, minor = self.env.compute_capability
        return f"tensorrt {self.env.version} ({self.precision}, {self.env.device_name}, sm{major}{minor})"

    def _run(self, inputs: dict[str, NDArray]) -> dict[str, NDArray]:
        cuda = self.env.cuda
        with self._ctx:
            for name, arr in inputs.items():
                want = np.dtype(self.io[name]["dtype"])
                host = self._host[name][: arr.size]
                host[...] = arr.reshape(-1).astype(want, copy=False)
                if not self.context.set_input_shape(name, arr.shape):
                    raise ValueError(
                        f"{self.card.name}: shape {arr.shape} of {name!r} is outside the engine profile"
                    )
                cuda.memcpy_htod_async(self._device[name], host, self.stream)
            if not self.context.execute_async_v3(stream_handle=self.stream.handle):
                raise EngineError(f"{self.card.name}: TensorRT execution failed")
            out: dict[str, NDArray] = {}
            for o in self.card.outputs:
                shape = tuple(int(d) for d in self.context.get_tensor_shape(o.name))
                host = self._host[o.name][: _volume(shape)]
                cuda.memcpy_dtoh_async(host, self._device[o.name], self.stream)
                out[o.name] = host
            self.stream.synchronize()
        # pinned buffers are reused by the next call: hand out copies
        return {name: host.reshape(self._out_shape(name)).copy() for name, host in out.items()}

    def _out_shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self.context.get_tensor_shape(name))

    def close(self) -> None:
        if getattr(self, "_device", None):
            with self._ctx:
                for buf in self._device.values():
                    buf.free()
                self._device = {}
                self.context = None
                self.engine = None
            self._ctx.release()
