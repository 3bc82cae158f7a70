"""Recurrent part-detection association (rnn_part_detection_association.txt): the ConvLSTM step loop
that emits one person's J heatmaps per iteration and stops when P_t < omega (card ``decoder.type:
rnn_association``).

The card's model (``features.onnx``) runs once per frame through the normal engine and gives the
``f4`` / ``f8`` features; this decoder then runs the recurrent **step graph** (``step.onnx``, state in /
state out: ``(f4, f8, hm, h1, c1, h2, c2) -> (hm_out, p_logit, h1_out, c1_out, h2_out, c2_out)``) in a
host loop. Per person ``refine_steps`` (2) steps: the first reads the initial maps (``init_value`` 0.05
everywhere, the mean of the paper's uniform [0, 0.1] initialisation, so decoding is deterministic), the
next the previous step's maps (the feedback loop); the last step's maps and stop probability
``P_t = sigmoid(p_logit)`` are the person's. The loop halts at the first ``P_t < omega`` (that iteration
emits nobody) or after ``max_people`` people.

Why a host loop over a step graph rather than one unrolled graph with a fixed maximum: the work then
follows the number of people (a frame with one person costs 4 steps, not ``2 (max + 1)``), ``max_people``
is a card parameter rather than baked into the export, and the loop, its stop rule and the maximum are
plain numpy that tests exercise with a planted step. The cost is one engine call per step (~0.1 ms of
overhead each with onnxruntime on CPU, small against the step itself). The step graph always runs on
onnxruntime (``threads`` intra-op threads); its file must sit beside the card (a plain file name) and
match ``step_sha256``, like every model a card names.

Keypoints: per map the argmax with the quarter-cell shift (:func:`.heatmap_argmax.argmax_decode`, rule
``inner``), mapped to input pixels with the ``cell`` alignment (:mod:`.geometry`); score = peak value
clipped to [0, 1], and 0 for a joint whose peak is below ``joint_threshold`` (the paper's tau = 0.015:
the joint is dropped, its location kept). The person's score is ``P_t``; its box is the extent of its
kept joints.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.checksum import file_sha256
from perception_pkg.cards.errors import CardError
from perception_pkg.cards.schema import ModelCard
from perception_pkg.decoders.base import Decoder, sigmoid
from perception_pkg.decoders.pose.geometry import heatmap_to_crop
from perception_pkg.decoders.pose.heatmap_argmax import argmax_decode
from perception_pkg.decoders.types import Detections

OMEGA = float(1.0 / (1.0 + np.exp(1.0)))  # sigmoid(-1) ~ 0.2689
STEP_INPUTS = ("f4", "f8", "hm", "h1", "c1", "h2", "c2")
STEP_OUTPUTS = ("hm_out", "p_logit", "h1_out", "c1_out", "h2_out", "c2_out")
STATE_NAMES = ("h1", "c1", "h2", "c2")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_FILE = re.compile(r"^[A-Za-z0-9_.-]+\.onnx$")

StepFn = Callable[[Mapping[str, NDArray]], Mapping[str, NDArray]]


class LoopResult(NamedTuple):
    maps: NDArray[np.float32]  # (N, J, H, W) the emitted people's maps
    probs: NDArray[np.float64]  # (N,) their P_t (all >= omega)
    all_probs: NDArray[np.float64]  # (T,) P_t of every iteration run, the stopping one included
    steps: int  # step-graph calls


def run_loop(
    step: StepFn,
    f4: NDArray,
    f8: NDArray,
    state_shapes: Mapping[str, Sequence[int]],
    num_joints: int,
    omega: float = OMEGA,
    max_people: int = 20,
    refine_steps: int = 2,
    init_value: float = 0.05,
) -> LoopResult:
    """The inference loop for one image (batch 1): iterate people until P_t < omega or ``max_people``.

    ``step`` maps the STEP_INPUTS arrays to the STEP_OUTPUTS arrays; ``state_shapes`` gives the shape of
    each state tensor (zeros at the start)."""
    if f4.ndim != 4 or f4.shape[0] != 1 or f8.ndim != 4 or f8.shape[0] != 1:
        raise ValueError(f"features must be (1, C, H, W); got f4 {f4.shape}, f8 {f8.shape}")
    if max_people < 0 or refine_steps < 1:
        raise ValueError(f"max_people must be >= 0 and refine_steps >= 1, got {max_people}, {refine_steps}")
    f4 = np.ascontiguousarray(f4, dtype=np.float32)
    f8 = np.ascontiguousarray(f8, dtype=np.float32)
    state = {k: np.zeros(tuple(state_shapes[k]), np.float32) for k in STATE_NAMES}
    init = np.full((1, num_joints, *f4.shape[2:]), init_value, np.float32)
    maps, probs, all_probs = [], [], []
    steps = 0
    for _ in range(max_people):
        hm = init
        for _ in range(refine_steps):
            out = step({"f4": f4, "f8": f8, "hm": hm, **state})
            steps += 1
            hm = np.asarray(out["hm_out"], np.float32)
            if hm.shape != init.shape:
                raise ValueError(f"step returned maps of shape {hm.shape}, expected {init.shape}")
            state = {k: np.asarray(out[f"{k}_out"], np.float32) for k in STATE_NAMES}
        p = float(sigmoid(np.asarray(out["p_logit"], np.float64).reshape(-1)[:1])[0])
        all_probs.append(p)
        if not p >= omega:  # also stops on NaN
            break
        maps.append(hm[0])
        probs.append(p)
    empty = np.zeros((0, num_joints, *f4.shape[2:]), np.float32)
    return LoopResult(
        np.stack(maps) if maps else empty, np.asarray(probs, np.float64), np.asarray(all_probs), steps
    )


REFINES = ("log_parabola", "quarter")


def log_parabola_peaks(maps: NDArray, floor: float = 1e-4) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Sub-cell peaks of (N, J, H, W) maps: per axis the vertex of the parabola through the log values at
    the argmax and its two neighbours -> (u (N, J, 2) heatmap coordinates, peak values (N, J)).

    Exact for a separable Gaussian (its log is a parabola on each axis), which is what the model is
    trained to emit, so a peak between cells is recovered instead of being rounded to the nearest
    quarter cell. Values are floored at ``floor`` before the log; the offset is limited to half a cell
    (beyond that the argmax would have been the neighbour) and is 0 on the border or on a flat top."""
    hm = np.asarray(maps, np.float64)
    n, j, h, w = hm.shape
    flat = hm.reshape(n, j, h * w)
    idx = flat.argmax(axis=-1)
    peak = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
    y, x = np.divmod(idx, w)
    ni, ji = np.meshgrid(np.arange(n), np.arange(j), indexing="ij")

    def logv(yy: NDArray, xx: NDArray) -> NDArray:
        return np.log(np.maximum(hm[ni, ji, np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)], floor))

    c = logv(y, x)
    out = []
    for lo, hi, inner in (
        (logv(y, x - 1), logv(y, x + 1), (x > 0) & (x < w - 1)),
        (logv(y - 1, x), logv(y + 1, x), (y > 0) & (y < h - 1)),
    ):
        curv = lo - 2.0 * c + hi  # < 0 at a strict maximum
        ok = inner & (curv < -1e-12)
        off = np.where(ok, 0.5 * (lo - hi) / np.where(ok, curv, -1.0), 0.0)
        out.append(np.clip(off, -0.5, 0.5))
    u = np.stack([x + out[0], y + out[1]], axis=-1)
    return u, peak


def people_from_maps(
    maps: NDArray, probs: NDArray, stride: float, joint_threshold: float, refine: str = "log_parabola"
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(keypoints (N, J, 3) input px + score, boxes (N, 4), scores (N,)) from per-person maps."""
    if refine not in REFINES:
        raise ValueError(f"unknown refine {refine!r}; expected one of {REFINES}")
    n, j = maps.shape[:2]
    if n == 0:
        return np.zeros((0, j, 3)), np.zeros((0, 4)), np.zeros(0)
    if refine == "quarter":
        u, peak = argmax_decode(maps, refine="quarter", rule="inner")
    else:
        u, peak = log_parabola_peaks(maps)
    xy = heatmap_to_crop(u, stride, alignment="cell")  # as trained (pose_rnn_net.gaussian_maps)
    score = np.clip(peak, 0.0, 1.0)
    kept = peak >= joint_threshold
    score = np.where(kept, score, 0.0)
    # box: extent of the kept joints (all joints when none is kept, so the box is still finite)
    use = np.where(kept.any(axis=1, keepdims=True), kept, True)
    big = np.where(use[..., None], xy, np.nan)
    lo, hi = np.nanmin(big, axis=1), np.nanmax(big, axis=1)
    hi = np.maximum(hi, lo + 1.0)  # a one-joint person still gets a valid (x1 > x0) box
    return np.concatenate([xy, score[..., None]], -1), np.concatenate([lo, hi], 1), np.asarray(probs, float)


class RnnAssociationDecoder(Decoder):
    roles = ("f4", "f8")
    params: ClassVar[Mapping[str, Any]] = {
        "step_model": None,
        "step_sha256": None,
        "stride": 4,
        "omega": OMEGA,
        "max_people": 20,
        "refine_steps": 2,
        "init_value": 0.05,
        "joint_threshold": 0.015,
        "refine": "log_parabola",
        "num_keypoints": 17,
        "threads": 1,
    }
    result = "detections"

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        self.stride = self.number("stride", positive=True)
        self.omega = self.number("omega", lo=0.0, hi=1.0)
        self.max_people = int(self.integer("max_people", minimum=0))
        self.refine_steps = int(self.integer("refine_steps"))
        self.init_value = self.number("init_value")
        self.joint_threshold = self.number("joint_threshold", lo=0.0, hi=1.0)
        self.refine = self.choice("refine", REFINES)
        self.k = int(self.integer("num_keypoints"))
        self.threads = int(self.integer("threads"))
        name = self.p["step_model"]
        if not isinstance(name, str) or not _FILE.match(name):
            raise self.fail("step_model", f"expected a plain .onnx file name beside the card, got {name!r}")
        digest = self.p["step_sha256"]
        if not isinstance(digest, str) or not _SHA.match(digest):
            raise self.fail("step_sha256", f"expected the step graph's 64-hex sha256, got {digest!r}")
        self.step_path = (Path(card.model_path).parent / name).resolve()
        self.step_sha256 = digest
        self._step: StepFn | None = None
        self._state_shapes: dict[str, tuple[int, ...]] | None = None
        self._lock = threading.Lock()
        self.last: LoopResult | None = None  # the last frame's loop (iterations, all P_t), for diagnostics

    def set_step(self, step: StepFn, state_shapes: Mapping[str, Sequence[int]]) -> None:
        """Use ``step`` instead of the ONNX step graph (tests plant known maps through this)."""
        self._step = step
        self._state_shapes = {k: tuple(int(d) for d in state_shapes[k]) for k in STATE_NAMES}

    def _load_step(self) -> None:
        src = self._source
        if not self.step_path.is_file():
            raise CardError("decoder.params.step_model", f"step graph not found: {self.step_path}", src)
        actual = file_sha256(self.step_path)
        if actual != self.step_sha256:
            raise CardError(
                "decoder.params.step_sha256",
                f"{self.step_path.name} has sha256 {actual}, the card says {self.step_sha256}",
                src,
            )
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        sess = ort.InferenceSession(
            str(self.step_path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        inputs = {i.name: i for i in sess.get_inputs()}
        outputs = [o.name for o in sess.get_outputs()]
        if set(inputs) != set(STEP_INPUTS) or set(outputs) != set(STEP_OUTPUTS):
            raise CardError(
                "decoder.params.step_model",
                f"step graph must take {list(STEP_INPUTS)} and give {list(STEP_OUTPUTS)}; "
                f"it takes {sorted(inputs)} and gives {sorted(outputs)}",
                src,
            )
        shapes = {}
        for k in STATE_NAMES:
            dims = inputs[k].shape
            if not all(isinstance(d, int) and d > 0 for d in dims):
                raise CardError(
                    "decoder.params.step_model", f"state {k!r} needs a static shape, got {dims}", src
                )
            shapes[k] = tuple(dims)

        def step(feed: Mapping[str, NDArray]) -> dict[str, NDArray]:
            values = sess.run(list(STEP_OUTPUTS), {k: feed[k] for k in STEP_INPUTS})
            return dict(zip(STEP_OUTPUTS, values, strict=True))

        self.set_step(step, shapes)

    def loop(self, f4: NDArray, f8: NDArray) -> LoopResult:
        with self._lock:  # one session, loaded once even when two pipelines share the decoder
            if self._step is None:
                self._load_step()
        assert self._step is not None and self._state_shapes is not None
        return run_loop(
            self._step, f4, f8, self._state_shapes, self.k, self.omega, self.max_people,
            self.refine_steps, self.init_value,
        )  # fmt: skip

    def __call__(self, outputs: Mapping[str, NDArray]) -> list[Detections]:
        f4 = self.output(outputs, "f4", 4)
        f8 = self.output(outputs, "f8", 4)
        if f4.shape[0] != f8.shape[0]:
            raise ValueError(f"f4 and f8 batch sizes differ: {f4.shape}, {f8.shape}")
        out = []
        for b in range(f4.shape[0]):
            res = self.loop(f4[b : b + 1], f8[b : b + 1])
            self.last = res
            kp, boxes, scores = people_from_maps(
                res.maps, res.probs, self.stride, self.joint_threshold, self.refine
            )
            order = np.argsort(-scores, kind="stable")  # consumers expect rows best first
            extras = {"iteration": order.astype(np.float64)}
            out.append(
                Detections(boxes[order], scores[order], np.zeros(len(order), np.int64), kp[order], extras)
            )
        return out
