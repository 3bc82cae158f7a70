"""Running statistics a node reports on /diagnostics: input rate, latency percentiles, counters."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class StatsSnapshot:
    input_rate_hz: float
    latency_p50_ms: float
    latency_p99_ms: float
    received: int
    processed: int
    dropped: int
    malformed: int
    errors: int
    last_error: str

    def as_pairs(self) -> list[tuple[str, str]]:
        """Key/value strings in a stable order (diagnostic_msgs/KeyValue)."""
        return [
            ("input_rate_hz", f"{self.input_rate_hz:.2f}"),
            ("latency_p50_ms", f"{self.latency_p50_ms:.2f}"),
            ("latency_p99_ms", f"{self.latency_p99_ms:.2f}"),
            ("received", str(self.received)),
            ("processed", str(self.processed)),
            ("dropped", str(self.dropped)),
            ("malformed", str(self.malformed)),
            ("errors", str(self.errors)),
            ("last_error", self.last_error),
        ]


@dataclass
class NodeStats:
    """Thread-safe counters and windows; callbacks and the worker thread update it concurrently."""

    window: int = 100
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _arrivals: deque = field(init=False, repr=False)
    _latencies: deque = field(init=False, repr=False)
    received: int = 0
    processed: int = 0
    dropped: int = 0
    malformed: int = 0
    errors: int = 0
    last_error: str = ""

    def __post_init__(self) -> None:
        self._arrivals = deque(maxlen=self.window)
        self._latencies = deque(maxlen=self.window)

    def on_received(self, now: float | None = None) -> None:
        with self._lock:
            self.received += 1
            self._arrivals.append(time.monotonic() if now is None else now)

    def on_dropped(self, n: int = 1) -> None:
        with self._lock:
            self.dropped += n

    def on_processed(self, latency_s: float) -> None:
        with self._lock:
            self.processed += 1
            self._latencies.append(latency_s)

    def on_malformed(self, reason: str) -> None:
        with self._lock:
            self.malformed += 1
            self.last_error = reason

    def on_error(self, reason: str) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = reason

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            arrivals = np.asarray(self._arrivals, dtype=np.float64)
            latencies = np.asarray(self._latencies, dtype=np.float64)
            rate = 0.0
            if arrivals.size >= 2 and arrivals[-1] > arrivals[0]:
                rate = (arrivals.size - 1) / (arrivals[-1] - arrivals[0])
            p50, p99 = (np.percentile(latencies, [50, 99]) * 1e3) if latencies.size else (0.0, 0.0)
            return StatsSnapshot(
                input_rate_hz=float(rate),
                latency_p50_ms=float(p50),
                latency_p99_ms=float(p99),
                received=self.received,
                processed=self.processed,
                dropped=self.dropped,
                malformed=self.malformed,
                errors=self.errors,
                last_error=self.last_error,
            )
