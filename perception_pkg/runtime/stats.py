"""Running statistics a node reports on /diagnostics: rates, latency percentiles, counters, loss estimate.

Two kinds of figures, kept apart on purpose:

- **totals** (``received``, ``processed``, ``dropped``, ``malformed``, ``errors``, the loss estimate)
  count everything since start and only grow;
- **recent** figures (input rate, latency percentiles, the ``recent_*`` counts, ``input_idle_s``)
  describe the last ``window_s`` seconds (at most ``window`` samples), so they decay when the input
  stops and a level computed from them returns to OK once a problem has passed.

Frames the middleware never delivered cannot be counted where they were lost; :class:`LossEstimate`
estimates them from the header stamps of the frames that did arrive (a sensor stamps at a steady rate,
so a gap of k periods means k - 1 frames missing).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

_NS = 1_000_000_000


def _period(intervals: np.ndarray) -> float:
    """The nominal period of stamp intervals that are (nearly) whole multiples of it: a first guess from
    a low percentile (leaving out catch-up intervals shorter than half the median), then refined as
    total time / total periods, each interval counting ``round(g / T)`` periods (a late frame's long
    interval and its successor's short one add up to the right count)."""
    usable = intervals[intervals >= 0.5 * np.median(intervals)]
    period = float(np.percentile(usable, 10))
    for _ in range(4):
        periods = np.rint(intervals / period).sum()
        if periods <= 0:
            break
        period = float(intervals.sum() / periods)
    return period


class LossEstimate:
    """Frames missing from a stream, estimated from its header stamps.

    The nominal period comes from the recent stamp intervals (:func:`_period`); it stays right while
    most frames are lost (lost frames only make intervals whole multiples longer) and when a sender
    stamps with jitter. Over a run
    of stamps (a *segment*) the frames expected are ``round((last - first) / period) + 1``; the estimate
    is expected minus received. Counting over the segment rather than per gap keeps a late frame
    followed by a catch-up one from counting as a loss. A gap longer than ``pause_s`` is a paused or
    restarted source, not loss (the node's liveness warning reports the silence), and a stamp that goes
    backwards (``out_of_order``) also starts a new segment.
    """

    def __init__(self, intervals: int = 64, min_intervals: int = 8, pause_s: float = 1.0) -> None:
        self._intervals: deque[int] = deque(maxlen=intervals)
        self._min = min_intervals
        self.pause_ns = int(pause_s * _NS)
        self._last: int | None = None
        self._period_ns: float | None = None
        self._since_update = 0
        self._seg_start = 0
        self._seg_count = 0
        self._seg_missing = 0
        self._closed = 0  # missing in segments already closed
        self.out_of_order = 0

    @property
    def period_s(self) -> float | None:
        """The nominal period (s), once enough intervals were seen."""
        return None if self._period_ns is None else self._period_ns / _NS

    @property
    def missing(self) -> int:
        return self._closed + self._seg_missing

    def _new_segment(self, stamp_ns: int) -> None:
        self._closed += self._seg_missing
        self._seg_start, self._seg_count, self._seg_missing = stamp_ns, 1, 0

    def add(self, stamp_ns: int) -> int:
        """Account for a received frame with this stamp; returns the change of the estimate (negative
        when a late frame turns out not to be missing)."""
        last, self._last = self._last, stamp_ns
        if last is None:
            self._new_segment(stamp_ns)
            return 0
        gap = stamp_ns - last
        if gap < 0:
            self.out_of_order += 1
        if gap < 0 or gap > self.pause_ns:
            self._new_segment(stamp_ns)
            return 0
        if gap == 0:  # the same frame twice
            return 0
        self._intervals.append(gap)
        self._since_update += 1
        if len(self._intervals) >= self._min and (self._period_ns is None or self._since_update >= 8):
            self._period_ns = _period(np.asarray(self._intervals, dtype=np.float64))
            self._since_update = 0
        self._seg_count += 1
        if self._period_ns is None:
            return 0
        expected = round((stamp_ns - self._seg_start) / self._period_ns) + 1
        before, self._seg_missing = self._seg_missing, max(0, expected - self._seg_count)
        return self._seg_missing - before


@dataclass
class StatsSnapshot:
    input_rate_hz: float
    latency_p50_ms: float  # receipt to results published, recent window
    latency_p99_ms: float
    received: int
    processed: int
    dropped: int
    malformed: int
    errors: int
    last_error: str  # the last processing error (never a malformed-input reason)
    last_malformed: str = ""  # the last malformed-input reason
    pipeline_latency_p50_ms: float = 0.0  # input header stamp to results published, recent window
    pipeline_latency_p99_ms: float = 0.0
    processing_p50_ms: float = 0.0  # the worker's time per frame (deserialise, run, publish), recent window
    processing_p99_ms: float = 0.0
    recent_received: int = 0
    recent_processed: int = 0
    recent_dropped: int = 0
    recent_malformed: int = 0
    recent_errors: int = 0
    recent_missing: int = 0
    input_idle_s: float | None = None  # since the last input; None before the first one
    input_missing: int = 0  # frames estimated lost before they reached the node, since start
    input_period_s: float | None = None  # the input's nominal period from its stamps
    window_s: float = 0.0
    by_input: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (received, malformed)
    main_input: str = ""

    @property
    def recent_loss_pct(self) -> float:
        expected = self.recent_received + self.recent_missing
        return 100.0 * self.recent_missing / expected if expected else 0.0

    def as_pairs(self) -> list[tuple[str, str]]:
        """Key/value strings in a stable order (diagnostic_msgs/KeyValue)."""
        return [
            ("input_rate_hz", f"{self.input_rate_hz:.2f}"),
            ("latency_p50_ms", f"{self.latency_p50_ms:.2f}"),
            ("latency_p99_ms", f"{self.latency_p99_ms:.2f}"),
            ("pipeline_latency_p50_ms", f"{self.pipeline_latency_p50_ms:.2f}"),
            ("pipeline_latency_p99_ms", f"{self.pipeline_latency_p99_ms:.2f}"),
            ("processing_p50_ms", f"{self.processing_p50_ms:.2f}"),
            ("processing_p99_ms", f"{self.processing_p99_ms:.2f}"),
            ("received", str(self.received)),
            ("processed", str(self.processed)),
            ("dropped", str(self.dropped)),
            ("malformed", str(self.malformed)),
            ("errors", str(self.errors)),
            ("input_loss_estimate", str(self.input_missing)),
            ("recent_loss_pct", f"{self.recent_loss_pct:.1f}"),
            ("input_idle_s", "" if self.input_idle_s is None else f"{self.input_idle_s:.2f}"),
            ("window_s", f"{self.window_s:g}"),
            ("recent_received", str(self.recent_received)),
            ("recent_processed", str(self.recent_processed)),
            ("recent_dropped", str(self.recent_dropped)),
            ("recent_malformed", str(self.recent_malformed)),
            ("recent_errors", str(self.recent_errors)),
            *[
                pair
                for key, (received, malformed) in self.by_input.items()
                for pair in (
                    [(f"malformed.{key}", str(malformed))]
                    if key == self.main_input
                    else [(f"received.{key}", str(received)), (f"malformed.{key}", str(malformed))]
                )
            ],
            ("last_malformed", self.last_malformed),
            ("last_error", self.last_error),
        ]


def _prune(times: deque, horizon: float) -> None:
    while times and (times[0] if not isinstance(times[0], tuple) else times[0][0]) < horizon:
        times.popleft()


def _recent_rate(arrivals: list[float], now: float) -> float:
    """Frames per second over the recent arrivals, decaying once the next one is overdue: with ``n``
    arrivals spanning ``s`` seconds (mean interval ``T = s / (n - 1)``), ``(n - 1) / max(s, now - first
    - T)``. Steady input gives the exact rate; a stopped one falls towards zero."""
    n = len(arrivals)
    if n < 2:
        return 0.0
    span = arrivals[-1] - arrivals[0]
    if span <= 0:
        return 0.0
    elapsed = max(span, now - arrivals[0] - span / (n - 1))
    return (n - 1) / elapsed


@dataclass
class NodeStats:
    """Thread-safe counters and recent windows; callbacks and the worker thread update it concurrently.

    ``window`` bounds the samples kept for rates and percentiles, ``window_s`` is how far back the
    recent figures look. Times are ``time.monotonic()`` seconds unless given.
    """

    window: int = 100
    window_s: float = 5.0
    pause_s: float = 1.0  # a stamp gap longer than this is a pause, not loss (LossEstimate)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    received: int = 0
    processed: int = 0
    dropped: int = 0
    malformed: int = 0
    errors: int = 0
    last_error: str = ""
    last_malformed: str = ""

    def __post_init__(self) -> None:
        self._arrivals: deque[float] = deque(maxlen=self.window)
        self._latencies: deque[tuple[float, float]] = deque(maxlen=self.window)
        self._pipeline: deque[tuple[float, float]] = deque(maxlen=self.window)
        self._processing: deque[tuple[float, float]] = deque(maxlen=self.window)
        # event times for the recent counts (pruned by age, so bounded by rate x window_s)
        self._events: dict[str, deque[float]] = {
            k: deque() for k in ("received", "processed", "dropped", "malformed", "errors")
        }
        self._missing: deque[tuple[float, int]] = deque()
        self._last_arrival: float | None = None
        self._by_input: dict[str, list[int]] = {}
        self.main_input = ""
        self.loss = LossEstimate(pause_s=self.pause_s)

    def _event(self, kind: str, now: float, n: int = 1) -> None:
        q = self._events[kind]
        q.extend([now] * n)
        _prune(q, now - self.window_s)

    def on_received(self, now: float | None = None, stamp_ns: int | None = None, key: str = "") -> None:
        """A main-input frame arrived (``key``: the input's name, for the per-input counts)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self.received += 1
            if key:
                self.main_input = key
                self._input(key)[0] += 1
            self._arrivals.append(now)
            self._last_arrival = now
            self._event("received", now)
            if stamp_ns is not None:
                change = self.loss.add(stamp_ns)
                if change:
                    self._missing.append((now, change))
                _prune(self._missing, now - self.window_s)

    def _input(self, key: str) -> list[int]:
        return self._by_input.setdefault(key, [0, 0])

    def on_other_input(self, key: str) -> None:
        """A message arrived on another input (CameraInfo, detections to pair with): counted per input."""
        with self._lock:
            self._input(key)[0] += 1

    def on_dropped(self, n: int = 1, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self.dropped += n
            self._event("dropped", now, n)

    def on_processed(
        self,
        latency_s: float,
        now: float | None = None,
        pipeline_latency_s: float | None = None,
        processing_s: float | None = None,
    ) -> None:
        """A frame's results were published ``latency_s`` after it arrived (``pipeline_latency_s`` after
        its header stamp; the worker spent ``processing_s`` on it)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self.processed += 1
            self._latencies.append((now, latency_s))
            if processing_s is not None:
                self._processing.append((now, processing_s))
            if pipeline_latency_s is not None:
                self._pipeline.append((now, pipeline_latency_s))
            self._event("processed", now)

    def on_malformed(self, reason: str, now: float | None = None, key: str = "") -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self.malformed += 1
            self.last_malformed = reason
            if key:
                self._input(key)[1] += 1
            self._event("malformed", now)

    def on_error(self, reason: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self.errors += 1
            self.last_error = reason
            self._event("errors", now)

    def snapshot(self, now: float | None = None) -> StatsSnapshot:
        now = time.monotonic() if now is None else now
        horizon = now - self.window_s
        with self._lock:
            arrivals = [t for t in self._arrivals if t >= horizon]
            lat = np.asarray([v for t, v in self._latencies if t >= horizon], dtype=np.float64)
            pipe = np.asarray([v for t, v in self._pipeline if t >= horizon], dtype=np.float64)
            work = np.asarray([v for t, v in self._processing if t >= horizon], dtype=np.float64)
            recent = {k: sum(1 for t in q if t >= horizon) for k, q in self._events.items()}
            recent_missing = max(0, sum(n for t, n in self._missing if t >= horizon))
            p50, p99 = (np.percentile(lat, [50, 99]) * 1e3) if lat.size else (0.0, 0.0)
            q50, q99 = (np.percentile(pipe, [50, 99]) * 1e3) if pipe.size else (0.0, 0.0)
            w50, w99 = (np.percentile(work, [50, 99]) * 1e3) if work.size else (0.0, 0.0)
            return StatsSnapshot(
                input_rate_hz=float(_recent_rate(arrivals, now)),
                latency_p50_ms=float(p50),
                latency_p99_ms=float(p99),
                received=self.received,
                processed=self.processed,
                dropped=self.dropped,
                malformed=self.malformed,
                errors=self.errors,
                last_error=self.last_error,
                last_malformed=self.last_malformed,
                pipeline_latency_p50_ms=float(q50),
                pipeline_latency_p99_ms=float(q99),
                processing_p50_ms=float(w50),
                processing_p99_ms=float(w99),
                recent_received=recent["received"],
                recent_processed=recent["processed"],
                recent_dropped=recent["dropped"],
                recent_malformed=recent["malformed"],
                recent_errors=recent["errors"],
                recent_missing=recent_missing,
                input_idle_s=None if self._last_arrival is None else now - self._last_arrival,
                input_missing=self.loss.missing,
                input_period_s=self.loss.period_s,
                window_s=self.window_s,
                by_input={k: (v[0], v[1]) for k, v in self._by_input.items()},
                main_input=self.main_input,
            )
