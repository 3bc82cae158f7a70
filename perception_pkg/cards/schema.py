"""Model card schema: what a network expects, what it returns, and where it came from.

A card is the only thing a user writes to run their own ONNX model. Every field is checked when the card
is parsed, and a wrong one raises :class:`CardError` naming the field by its path in the YAML, so
mistakes surface at load time instead of as silently wrong boxes.

Normalisation convention: ``x = (pixel * scale - mean) / std`` per channel, with pixels taken in the
card's colour order. Images enter the stack as BGR uint8 (OpenCV's order), whatever the card says.
Coordinates: pixel ``(row i, col j)`` covers ``[j, j+1) x [i, i+1)``; boxes and keypoints are continuous
coordinates in that frame, so a box ``[0, 0, W, H]`` covers the whole image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perception_pkg.cards.errors import CardError

LAYOUTS = ("NCHW", "NHWC")
COLORS = ("RGB", "BGR", "GRAY")
DTYPES = ("float32", "float16", "uint8", "int32", "int64")
RESIZE_POLICIES = ("letterbox", "stretch", "topdown", "none")
ANCHORS = ("center", "top_left")
ROUNDINGS = ("round", "floor")
LETTERBOX_INVERSES = ("ratio", "exact")
CROPS = ("cv2", "exact")
ASPECT_FITS = ("expand", "stretch")
INTERPOLATIONS = ("linear", "nearest", "area", "cubic")
PRECISIONS = ("fp32", "fp16", "int8")
INPUT_KINDS = ("image", "tensor")


class _Fields:
    """Reads one YAML mapping, remembering the path for error messages and rejecting unknown keys."""

    def __init__(self, data: Any, path: str, source: str | None) -> None:
        if not isinstance(data, Mapping):
            raise CardError(path or "card", f"expected a mapping, got {type(data).__name__}", source)
        self.data = data
        self.path = path
        self.source = source
        self._used: set[str] = set()

    def where(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str | int, message: str) -> CardError:
        return CardError(self.where(key), message, self.source)

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def raw(self, key: str, default: Any = None, required: bool = False) -> Any:
        self._used.add(key)
        if not self.has(key):
            if required:
                raise self.fail(key, "required field is missing")
            return default
        return self.data[key]

    def str(
        self,
        key: str,
        default: str | None = None,
        required: bool = False,
        choices: Sequence[str] | None = None,
    ) -> str | None:
        if not self.has(key):
            self.raw(key, default, required)  # marks the key used; raises when required
            return default
        value = self.raw(key)
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a non-empty string, got {value!r}")
        if choices is not None:
            # case-insensitive match, stored in the canonical spelling
            canon = {c.lower(): c for c in choices}
            if value.lower() not in canon:
                raise self.fail(key, f"expected one of {', '.join(choices)}, got {value!r}")
            value = canon[value.lower()]
        return value

    def number(
        self,
        key: str,
        default: float | None = None,
        required: bool = False,
        positive: bool = False,
        minimum: float | None = None,
    ) -> float | None:
        value = self.raw(key, default, required)
        if value is None:
            return None
        value = _as_number(value)
        if value is None or not math.isfinite(value):
            raise self.fail(key, f"expected a finite number, got {self.data.get(key)!r}")
        if positive and value <= 0:
            raise self.fail(key, f"must be > 0, got {value}")
        if minimum is not None and value < minimum:
            raise self.fail(key, f"must be >= {minimum}, got {value}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {value!r}")
        return value

    def numbers(self, key: str, default: Sequence[float]) -> tuple[float, ...]:
        value = self.raw(key, default)
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, Sequence) or not value:
            raise self.fail(key, f"expected a number or a list of numbers, got {value!r}")
        out = []
        for i, v in enumerate(value):
            n = _as_number(v)
            if n is None or not math.isfinite(n):
                raise CardError(
                    f"{self.where(key)}[{i}]", f"expected a finite number, got {v!r}", self.source
                )
            out.append(n)
        return tuple(out)

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.raw(key, ())
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise self.fail(key, f"expected a list of strings, got {value!r}")
        for i, v in enumerate(value):
            if not isinstance(v, str) or not v:
                raise CardError(
                    f"{self.where(key)}[{i}]", f"expected a non-empty string, got {v!r}", self.source
                )
        if len(set(value)) != len(value):
            dupes = sorted({v for v in value if list(value).count(v) > 1})
            raise self.fail(key, f"duplicate names {dupes}")
        return tuple(value)

    def mapping(self, key: str, required: bool = False) -> _Fields | None:
        value = self.raw(key, None, required)
        if value is None:
            return None
        return _Fields(value, self.where(key), self.source)

    def items(self, key: str, required: bool = False) -> list[_Fields]:
        value = self.raw(key, None, required)
        if value is None:
            return []
        if not isinstance(value, Sequence) or isinstance(value, str) or (required and not value):
            raise self.fail(key, "expected a non-empty list")
        return [_Fields(v, self.where(key) + f"[{i}]", self.source) for i, v in enumerate(value)]

    def done(self) -> None:
        unknown = [k for k in self.data if k not in self._used]
        if unknown:
            known = ", ".join(sorted(self._used))
            raise self.fail(str(unknown[0]), f"unknown field (known here: {known})")


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        # allow "1/255", the way people write pixel scales
        parts = value.split("/")
        try:
            if len(parts) == 2:
                return float(parts[0]) / float(parts[1])
            return float(value)
        except (ValueError, ZeroDivisionError):
            return None
    return None


Dim = int | str
"""A tensor dimension: a fixed size, or the name of a dynamic dimension with a range in ``dynamic``."""


@dataclass(frozen=True)
class ResizeSpec:
    """How a camera image becomes the network's input size, and how results map back.

    Upstream projects differ in small conventions that move boxes and keypoints by pixels, so each one is
    a field; the defaults are what the most common exporters do (the sources named per field).

    letterbox: keep the aspect ratio, resize by ``r = min(H / h, W / w)``, pad with ``pad_value``.
      ``rounding``: the resized size is ``round(w r)`` (``round``: Ultralytics, mmdet/mmyolo, YOLOv5/7)
      or ``int(w r)`` (``floor``: YOLOX's ``preproc``). ``anchor``: ``center`` (Ultralytics: the extra
      pixel of an odd padding goes bottom/right) or ``top_left`` (YOLOX). ``inverse``: how boxes map
      back: ``ratio`` divides by the unrounded ``r`` on both axes after removing the padding, the
      padding recomputed from the unrounded size for ``center`` (YOLOX ``boxes /= r``, Ultralytics
      ``scale_boxes``); ``exact`` inverts the map the resize applied (``new_w / w``, ``new_h / h``), which
      is what this stack's own models are trained against.
    stretch: scale each axis independently.
    topdown: an affine crop around each person box, its centre kept, widened or heightened to
      ``aspect_ratio`` (width/height; default the input's; ``aspect: expand``, mmpose and GluonCV) or
      not (``aspect: stretch``: each axis scaled on its own; mmpose ``fix_aspect_ratio=False``), then
      enlarged by ``padding``.
      ``crop``: ``cv2`` builds the map as GluonCV / mmpose do (``cv2.getAffineTransform`` of the box
      centre and edge mid-point taken as pixel-centre coordinates, sampled by ``cv2.warpAffine``, one
      crop at a time); ``exact`` maps the box region onto the whole input in this stack's continuous
      convention (a box edge lands on a crop edge), sampled in one batched ``cv2.remap``. The two differ
      by ``(1 - s) / 2`` crop pixels (s = crop pixels per image pixel).
    none: the image must already have the input size.
    """

    policy: str = "letterbox"
    pad_value: float = 114.0
    anchor: str = "center"
    rounding: str = "round"
    inverse: str = "ratio"
    aspect_ratio: float | None = None
    padding: float = 1.25
    aspect: str = "expand"
    crop: str = "cv2"
    interpolation: str = "linear"


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[Dim, ...]
    dtype: str = "float32"
    kind: str = "image"
    layout: str = "NCHW"
    color: str = "RGB"
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    resize: ResizeSpec = field(default_factory=ResizeSpec)
    dynamic: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)

    @property
    def is_image(self) -> bool:
        return self.kind == "image"

    def concrete_shape(self, which: str = "opt") -> tuple[int, ...]:
        """The shape with dynamic dims replaced by their min, opt or max value."""
        pick = {"min": 0, "opt": 1, "max": 2}[which]
        return tuple(d if isinstance(d, int) else self.dynamic[d][pick] for d in self.shape)

    def _axis(self, letter: str) -> int:
        return self.layout.index(letter)

    @property
    def height(self) -> int:
        return self.concrete_shape()[self._axis("H")]

    @property
    def width(self) -> int:
        return self.concrete_shape()[self._axis("W")]

    @property
    def channels(self) -> int:
        return self.concrete_shape()[self._axis("C")]

    @property
    def dynamic_dims(self) -> tuple[int, ...]:
        return tuple(i for i, d in enumerate(self.shape) if isinstance(d, str))


@dataclass(frozen=True)
class OutputSpec:
    name: str
    shape: tuple[Dim, ...] | None = None
    dtype: str | None = None


@dataclass(frozen=True)
class DecoderSpec:
    """Which decoder reads the outputs: ``outputs`` maps the decoder's roles to output tensor names."""

    type: str = "raw"
    outputs: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PrecisionSpec:
    preferred: str = "fp16"
    supported: tuple[str, ...] = ("fp32", "fp16")
    calibration_images: int = 500
    calibration_batch: int = 8


@dataclass(frozen=True)
class Provenance:
    training: str = ""
    data: str = ""
    accuracy: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    license: str = ""
    notes: str = ""


@dataclass(frozen=True)
class TorchSpec:
    """How to build the same network in torch (reference backend): ``factory`` is a registered name
    (``engines/torch_backend.py``: TORCH_FACTORIES, or an installed entry point; never an import path),
    called with ``kwargs``; ``weights`` is a state dict (loaded with ``weights_only``)."""

    factory: str
    weights: Path | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelCard:
    name: str
    model_path: Path
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    decoder: DecoderSpec = field(default_factory=DecoderSpec)
    task: str = "other"
    description: str = ""
    classes: tuple[str, ...] = ()
    keypoints: tuple[str, ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()
    precision: PrecisionSpec = field(default_factory=PrecisionSpec)
    provenance: Provenance = field(default_factory=Provenance)
    torch: TorchSpec | None = None
    source: Path | None = None
    sha256: str | None = None  # of the model file; verified at load (cards/checksum.py)

    @property
    def directory(self) -> Path:
        return self.model_path.parent

    @property
    def image_input(self) -> InputSpec:
        """The (first) image input; most models have exactly one."""
        for spec in self.inputs:
            if spec.is_image:
                return spec
        raise CardError("inputs", "this card has no image input", str(self.source) if self.source else None)

    def input(self, name: str) -> InputSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)


def _parse_shape(f: _Fields, key: str, required: bool) -> tuple[Dim, ...] | None:
    value = f.raw(key, None, required)
    if value is None:
        return None
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise f.fail(key, f"expected a list of dimensions, got {value!r}")
    dims: list[Dim] = []
    for i, d in enumerate(value):
        where = f"{f.where(key)}[{i}]"
        if isinstance(d, bool) or not isinstance(d, (int, str)):
            raise CardError(where, f"expected a positive integer or a dimension name, got {d!r}", f.source)
        if isinstance(d, int) and d <= 0:
            # -1 and 0 are how ONNX tools print unknown dims; a card must name them instead
            raise CardError(
                where, f"must be > 0, or a name such as 'batch' for a dynamic dimension, got {d}", f.source
            )
        dims.append(d)
    return tuple(dims)


def _parse_dynamic(f: _Fields, shape: tuple[Dim, ...]) -> dict[str, tuple[int, int, int]]:
    names = [d for d in shape if isinstance(d, str)]
    sub = f.mapping("dynamic")
    ranges: dict[str, tuple[int, int, int]] = {}
    if sub is not None:
        for name in list(sub.data):
            value = sub.raw(name)
            where = sub.where(name)
            if name not in names:
                raise CardError(where, f"no dimension named {name!r} in shape {list(shape)}", f.source)
            if isinstance(value, int) and not isinstance(value, bool):
                value = [value, value, value]
            if (
                not isinstance(value, Sequence)
                or len(value) != 3
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            ):
                raise CardError(where, f"expected [min, opt, max] integers, got {value!r}", f.source)
            lo, opt, hi = value
            if not 0 < lo <= opt <= hi:
                raise CardError(where, f"need 0 < min <= opt <= max, got {list(value)}", f.source)
            ranges[name] = (lo, opt, hi)
        sub.done()
    for name in names:
        if name not in ranges:
            if name in ("batch", "N", "n"):
                ranges[name] = (1, 1, 1)  # a named batch without a range means batch 1 only
            else:
                raise f.fail("dynamic", f"dimension {name!r} needs a [min, opt, max] range here")
    return ranges


def _parse_resize(f: _Fields | None, default_pad: float) -> ResizeSpec:
    if f is None:
        return ResizeSpec()
    policy = f.str("policy", "letterbox", choices=RESIZE_POLICIES)
    pad_default = 0.0 if policy == "topdown" else default_pad
    spec = ResizeSpec(
        policy=policy,
        pad_value=f.number("pad_value", pad_default),
        anchor=f.str("anchor", "center", choices=ANCHORS),
        rounding=f.str("rounding", "round", choices=ROUNDINGS),
        inverse=f.str("inverse", "ratio", choices=LETTERBOX_INVERSES),
        aspect_ratio=f.number("aspect_ratio", None, positive=True),
        padding=f.number("padding", 1.25, minimum=1.0),
        aspect=f.str("aspect", "expand", choices=ASPECT_FITS),
        crop=f.str("crop", "cv2", choices=CROPS),
        interpolation=f.str("interpolation", "linear", choices=INTERPOLATIONS),
    )
    # a convention given for another policy would be silently ignored: say so instead (after the values
    # themselves are checked, so a bad value is reported as such)
    letterbox_only = ("anchor", "rounding", "inverse")
    topdown_only = ("aspect_ratio", "aspect", "crop")
    for key in (*letterbox_only, *topdown_only):
        owner = "letterbox" if key in letterbox_only else "topdown"
        if policy != owner and f.has(key):
            raise f.fail(key, f"applies to policy {owner} only, this input's policy is {policy}")
    f.done()
    return spec


def _parse_input(f: _Fields) -> InputSpec:
    name = f.str("name", required=True)
    kind = f.str("kind", "image", choices=INPUT_KINDS)
    shape = _parse_shape(f, "shape", required=True)
    dtype = f.str("dtype", "float32", choices=DTYPES)
    dynamic = _parse_dynamic(f, shape)
    if kind == "tensor":
        f.done()
        return InputSpec(name=name, shape=shape, dtype=dtype, kind=kind, dynamic=dynamic)
    if len(shape) != 4:
        raise f.fail(
            "shape", f"an image input needs 4 dimensions (N, C, H, W or N, H, W, C), got {list(shape)}"
        )
    layout = f.str("layout", "NCHW", choices=LAYOUTS)
    color = f.str("color", "RGB", choices=COLORS)
    c_dim = shape[layout.index("C")]
    want = 1 if color == "GRAY" else 3
    if c_dim != want:
        raise f.fail(
            "shape",
            f"layout {layout} puts channels at axis {layout.index('C')}, which is {c_dim!r}; "
            f"colour {color} needs {want}",
        )
    for axis in "HW":
        d = shape[layout.index(axis)]
        if isinstance(d, str) and dynamic[d][1] <= 0:
            raise f.fail("dynamic", f"{axis} dimension {d!r} needs a positive opt size")
    scale = f.number("scale", 1.0 / 255.0, positive=True)
    mean = f.numbers("mean", (0.0,))
    std = f.numbers("std", (1.0,))
    for key, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, want):
            raise f.fail(key, f"expected 1 or {want} values for colour {color}, got {len(values)}")
    if any(s == 0 for s in std):
        raise f.fail("std", "must not contain 0")
    resize = _parse_resize(f.mapping("resize"), default_pad=114.0)
    f.done()
    return InputSpec(
        name=name,
        shape=shape,
        dtype=dtype,
        kind=kind,
        layout=layout,
        color=color,
        scale=scale,
        mean=mean,
        std=std,
        resize=resize,
        dynamic=dynamic,
    )


def _parse_output(f: _Fields) -> OutputSpec:
    spec = OutputSpec(
        name=f.str("name", required=True),
        shape=_parse_shape(f, "shape", required=False),
        dtype=f.str("dtype", None, choices=DTYPES),
    )
    f.done()
    return spec


def _parse_decoder(f: _Fields | None, outputs: tuple[OutputSpec, ...]) -> DecoderSpec:
    names = {o.name for o in outputs}
    if f is None:
        return DecoderSpec(type="raw")
    dtype = f.str("type", required=True)
    roles_f = f.mapping("outputs")
    roles: dict[str, str] = {}
    if roles_f is not None:
        for role in list(roles_f.data):
            tensor = roles_f.str(role, required=True)
            if tensor not in names:
                raise roles_f.fail(role, f"{tensor!r} is not one of the card's outputs {sorted(names)}")
            roles[role] = tensor
        roles_f.done()
    elif len(outputs) == 1:
        roles = {}  # single-output decoders take the only output
    params_f = f.raw("params", {})
    if not isinstance(params_f, Mapping):
        raise f.fail("params", f"expected a mapping, got {params_f!r}")
    f.done()
    return DecoderSpec(type=dtype, outputs=roles, params=dict(params_f))


def _parse_precision(f: _Fields | None) -> PrecisionSpec:
    if f is None:
        return PrecisionSpec()
    supported = f.raw("supported", ["fp32", "fp16"])
    if isinstance(supported, str):
        supported = [supported]
    if not isinstance(supported, Sequence) or not supported:
        raise f.fail("supported", f"expected a list out of {PRECISIONS}, got {supported!r}")
    for i, p in enumerate(supported):
        if p not in PRECISIONS:
            raise CardError(
                f"{f.where('supported')}[{i}]",
                f"expected one of {', '.join(PRECISIONS)}, got {p!r}",
                f.source,
            )
    preferred = f.str("preferred", "fp16" if "fp16" in supported else supported[0], choices=PRECISIONS)
    if preferred not in supported:
        raise f.fail("preferred", f"{preferred} is not in supported {list(supported)}")
    cal = f.mapping("calibration")
    images, batch = 500, 8
    if cal is not None:
        images = int(cal.number("images", 500, positive=True))
        batch = int(cal.number("batch", 8, positive=True))
        cal.done()
    f.done()
    return PrecisionSpec(
        preferred=preferred, supported=tuple(supported), calibration_images=images, calibration_batch=batch
    )


def _parse_provenance(f: _Fields | None) -> Provenance:
    if f is None:
        return Provenance()
    accuracy = f.raw("accuracy", {})
    if not isinstance(accuracy, Mapping):
        raise f.fail("accuracy", f"expected a mapping of metric -> value, got {accuracy!r}")
    prov = Provenance(
        training=f.str("training", "") or "",
        data=f.str("data", "") or "",
        accuracy=dict(accuracy),
        source=f.str("source", "") or "",
        license=f.str("license", "") or "",
        notes=f.str("notes", "") or "",
    )
    f.done()
    return prov


def _parse_torch(f: _Fields | None, base: Path) -> TorchSpec | None:
    if f is None:
        return None
    factory = f.str("factory", required=True)  # a registered name, resolved by the torch backend
    weights = f.str("weights", None)
    kwargs = f.raw("kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise f.fail("kwargs", f"expected a mapping, got {kwargs!r}")
    f.done()
    return TorchSpec(factory=factory, weights=(base / weights) if weights else None, kwargs=dict(kwargs))


def _parse_skeleton(f: _Fields, n_keypoints: int) -> tuple[tuple[int, int], ...]:
    value = f.raw("skeleton", ())
    out = []
    for i, pair in enumerate(value):
        ok = (
            isinstance(pair, Sequence)
            and len(pair) == 2
            and all(isinstance(v, int) and 0 <= v < n_keypoints for v in pair)
        )
        if not ok:
            raise CardError(
                f"skeleton[{i}]",
                f"expected a pair of keypoint indices < {n_keypoints}, got {pair!r}",
                f.source,
            )
        out.append((int(pair[0]), int(pair[1])))
    return tuple(out)


def parse_card(data: Any, base_dir: Path | str = ".", source: str | Path | None = None) -> ModelCard:
    """Build a :class:`ModelCard` from parsed YAML; paths in it are relative to ``base_dir``."""
    base = Path(base_dir)
    src = str(source) if source is not None else None
    f = _Fields(data, "", src)
    name = f.str("name", required=True)
    model = f.str("model", "model.onnx")
    sha256 = f.str("sha256", None)
    if sha256 is not None:
        sha256 = sha256.lower()
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise f.fail("sha256", f"expected the model file's sha256 (64 hex digits), got {sha256!r}")
    inputs = tuple(_parse_input(i) for i in f.items("inputs", required=True))
    outputs = tuple(_parse_output(o) for o in f.items("outputs", required=True))
    for key, specs in (("inputs", inputs), ("outputs", outputs)):
        seen: set[str] = set()
        for i, spec in enumerate(specs):
            if spec.name in seen:
                raise CardError(f"{key}[{i}].name", f"duplicate name {spec.name!r}", src)
            seen.add(spec.name)
    decoder = _parse_decoder(f.mapping("decoder"), outputs)
    keypoints = f.strings("keypoints")
    card = ModelCard(
        name=name,
        model_path=(base / model),
        inputs=inputs,
        outputs=outputs,
        decoder=decoder,
        task=f.str("task", "other") or "other",
        description=f.str("description", "") or "",
        classes=f.strings("classes"),
        keypoints=keypoints,
        skeleton=_parse_skeleton(f, len(keypoints)),
        precision=_parse_precision(f.mapping("precision")),
        provenance=_parse_provenance(f.mapping("provenance")),
        torch=_parse_torch(f.mapping("torch"), base),
        source=Path(source) if source is not None else None,
        sha256=sha256,
    )
    f.done()
    return card
