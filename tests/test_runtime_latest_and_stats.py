"""LatestSlot (latest-frame hand-off) and NodeStats (diagnostics figures)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from perception_pkg.runtime import LatestSlot, NodeStats


def test_latest_slot_keeps_newest_and_counts_each_replaced_item() -> None:
    slot: LatestSlot[int] = LatestSlot()
    replaced = [slot.put(i) for i in range(5)]
    assert replaced == [False, True, True, True, True]
    assert slot.dropped == 4
    assert slot.take(timeout=0) == 4
    assert slot.take(timeout=0.01) is None


def test_latest_slot_take_wakes_on_put_from_other_thread() -> None:
    slot: LatestSlot[str] = LatestSlot()
    threading.Timer(0.05, slot.put, args=("frame",)).start()
    assert slot.take(timeout=5) == "frame"


def test_latest_slot_close_releases_waiting_worker() -> None:
    slot: LatestSlot[int] = LatestSlot()
    threading.Timer(0.05, slot.close).start()
    assert slot.take(timeout=5) is None


def test_latest_slot_memory_is_bounded_under_a_fast_producer() -> None:
    slot: LatestSlot[np.ndarray] = LatestSlot()
    consumed = []

    def consumer() -> None:
        while (item := slot.take(timeout=0.5)) is not None:
            consumed.append(int(item[0]))

    t = threading.Thread(target=consumer)
    t.start()
    for i in range(2000):
        slot.put(np.full(4, i))
    t.join()
    # every frame was either consumed or counted as dropped, and the last one always reaches the worker
    assert len(consumed) + slot.dropped == 2000
    assert consumed[-1] == 1999
    assert consumed == sorted(consumed)


def test_node_stats_rate_latency_percentiles_and_counters() -> None:
    stats = NodeStats(window=50)
    for i in range(11):
        stats.on_received(now=100.0 + i * 0.1)  # 10 Hz
    for ms in range(1, 101):  # only the last 50 stay in the window: 51..100 ms
        stats.on_processed(ms / 1000)
    stats.on_dropped(3)
    stats.on_malformed("Image.step: expected >= 1920, got 10")
    snap = stats.snapshot()
    assert snap.input_rate_hz == pytest.approx(10.0)
    assert snap.latency_p50_ms == pytest.approx(75.5)
    assert snap.latency_p99_ms == pytest.approx(np.percentile(np.arange(51, 101), 99))
    assert (snap.received, snap.processed, snap.dropped, snap.malformed, snap.errors) == (11, 100, 3, 1, 0)
    assert dict(snap.as_pairs())["last_error"].startswith("Image.step")


def test_node_stats_empty_snapshot_is_zero_not_nan() -> None:
    snap = NodeStats().snapshot()
    assert (snap.input_rate_hz, snap.latency_p50_ms, snap.latency_p99_ms) == (0.0, 0.0, 0.0)
