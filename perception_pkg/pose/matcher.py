"""Pair two message streams by exact header stamp, with a bounded wait and a bounded buffer.

The pose node needs the image and the person detections of the same frame. A detector publishes its
results with the image's stamp, so pairs are matched by equality (no nearest-time guessing). Each side
waits at most ``max_wait_s`` (measured on the caller's clock at arrival, not the stamp: a bag replayed
late or a clock jump must not expire everything) and at most ``buffer_size`` items per side are kept;
older ones are evicted. Every item leaves the buffer in exactly one way, and each way is counted.

Pure Python, no ROS; thread-safe (a lock around each call), because the two subscriptions of a node may
run on different executor threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

A = TypeVar("A")
B = TypeVar("B")
SIDES = ("image", "detections")


@dataclass(frozen=True)
class Match(Generic[A, B]):
    """One pair; ``arrived`` is the first-side item's arrival time (for receipt-to-publish latency)."""

    stamp_ns: int
    image: A
    detections: B
    arrived: float


@dataclass
class MatchCounts:
    """How items left the buffers. Per side: added = matched + expired + evicted + replaced + pending."""

    matched: int = 0
    expired_image: int = 0
    expired_detections: int = 0
    evicted_image: int = 0
    evicted_detections: int = 0
    replaced_image: int = 0  # same stamp arrived again before its partner: the newer one is kept
    replaced_detections: int = 0

    @property
    def unmatched(self) -> int:
        """Items that will never be matched (expired, evicted or replaced), both sides."""
        return (
            self.expired_image
            + self.expired_detections
            + self.evicted_image
            + self.evicted_detections
            + self.replaced_image
            + self.replaced_detections
        )

    @property
    def expired(self) -> int:
        return self.expired_image + self.expired_detections


class StampMatcher(Generic[A, B]):
    """``add_image`` / ``add_detections`` return the :class:`Match` they complete, else None.

    ``now`` is any monotonic clock in seconds (``time.monotonic()`` in a node, bag time in replay).
    """

    def __init__(self, max_wait_s: float = 0.5, buffer_size: int = 30) -> None:
        if not max_wait_s > 0:
            raise ValueError(f"max_wait_s must be > 0, got {max_wait_s}")
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        self.max_wait_s = float(max_wait_s)
        self.buffer_size = int(buffer_size)
        self.counts = MatchCounts()
        # stamp -> (item, arrival); insertion order = arrival order, so the oldest is first
        self._pending: tuple[OrderedDict[int, tuple[object, float]], ...] = (OrderedDict(), OrderedDict())
        self._lock = threading.Lock()

    def add_image(self, stamp_ns: int, image: A, now: float) -> Match[A, B] | None:
        return self._add(0, stamp_ns, image, now)  # type: ignore[return-value]

    def add_detections(self, stamp_ns: int, detections: B, now: float) -> Match[A, B] | None:
        return self._add(1, stamp_ns, detections, now)  # type: ignore[return-value]

    def expire(self, now: float) -> int:
        """Drop items that waited longer than ``max_wait_s``; returns how many."""
        with self._lock:
            return self._expire(now)

    def pending(self) -> tuple[int, int]:
        """Items waiting for a partner: (images, detections)."""
        with self._lock:
            return len(self._pending[0]), len(self._pending[1])

    def _add(self, side: int, stamp_ns: int, item: object, now: float) -> Match | None:
        stamp_ns = int(stamp_ns)
        with self._lock:
            self._expire(now)
            other = self._pending[1 - side]
            if stamp_ns in other:
                partner, arrived = other.pop(stamp_ns)
                self.counts.matched += 1
                pair = (item, partner) if side == 0 else (partner, item)
                return Match(stamp_ns, pair[0], pair[1], arrived)
            mine = self._pending[side]
            if stamp_ns in mine:
                del mine[stamp_ns]
                self._count("replaced", side)
            mine[stamp_ns] = (item, now)
            while len(mine) > self.buffer_size:
                mine.popitem(last=False)
                self._count("evicted", side)
            return None

    def _expire(self, now: float) -> int:
        dropped = 0
        for side, queue in enumerate(self._pending):
            # arrival order: stop at the first one still young enough
            while queue and now - next(iter(queue.values()))[1] > self.max_wait_s:
                queue.popitem(last=False)
                self._count("expired", side)
                dropped += 1
        return dropped

    def _count(self, what: str, side: int) -> None:
        name = f"{what}_{SIDES[side]}"
        setattr(self.counts, name, getattr(self.counts, name) + 1)
