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
        stats.on_processed(ms / 1000, now=101.0)
    stats.on_dropped(3, now=101.0)
    stats.on_malformed("Image.step: expected >= 1920, got 10", now=101.0)
    snap = stats.snapshot(now=101.0)
    assert snap.input_rate_hz == pytest.approx(10.0)
    assert snap.latency_p50_ms == pytest.approx(75.5)
    assert snap.latency_p99_ms == pytest.approx(np.percentile(np.arange(51, 101), 99))
    assert (snap.received, snap.processed, snap.dropped, snap.malformed, snap.errors) == (11, 100, 3, 1, 0)
    assert dict(snap.as_pairs())["last_malformed"].startswith("Image.step")
    assert dict(snap.as_pairs())["last_error"] == ""  # a malformed input is not a processing error


def test_node_stats_empty_snapshot_is_zero_not_nan() -> None:
    snap = NodeStats().snapshot()
    assert (snap.input_rate_hz, snap.latency_p50_ms, snap.latency_p99_ms) == (0.0, 0.0, 0.0)
    assert snap.input_idle_s is None and snap.input_missing == 0


def test_rate_decays_when_the_input_stops_and_recent_counts_expire_while_totals_stay() -> None:
    stats = NodeStats(window=100, window_s=5.0)
    for i in range(50):
        stats.on_received(now=10.0 + i * 0.1)  # 10 Hz until t = 14.9
    stats.on_malformed("bad", now=14.9)
    stats.on_error("RuntimeError: boom", now=14.9)
    assert stats.snapshot(now=14.95).input_rate_hz == pytest.approx(10.0)
    rates = [stats.snapshot(now=t).input_rate_hz for t in (15.5, 16.0, 17.0, 19.0, 20.0)]
    assert rates == sorted(rates, reverse=True) and rates[0] < 10.0  # decays once a frame is overdue
    assert rates[-1] == 0.0  # nothing left in the 5 s window
    late = stats.snapshot(now=20.0)
    assert (late.recent_received, late.recent_malformed, late.recent_errors) == (0, 0, 0)
    assert (late.received, late.malformed, late.errors) == (50, 1, 1)  # totals are counters
    assert late.input_idle_s == pytest.approx(5.1)
    assert late.last_error == "RuntimeError: boom" and late.last_malformed == "bad"


def test_loss_estimate_counts_frames_missing_from_stamp_gaps() -> None:
    stats = NodeStats(window=200, window_s=100.0, pause_s=1.0)
    period = 33_333_333  # 30 Hz stamps
    kept = [i for i in range(300) if i % 3 != 1]  # every third frame lost on the way
    for i in kept:
        stats.on_received(now=i / 30, stamp_ns=i * period + (i * 7919) % 500_000)  # with jitter
    snap = stats.snapshot(now=10.0)
    assert snap.input_missing == 100  # 300 sent - 200 received (frame 299 is the last one sent)
    assert snap.recent_loss_pct == pytest.approx(100 * 100 / 300, abs=0.5)
    assert snap.input_period_s == pytest.approx(1 / 30, rel=0.02)


def test_loss_estimate_does_not_count_late_frames_of_a_jittery_sender() -> None:
    from perception_pkg.runtime.stats import LossEstimate

    est = LossEstimate()
    period = 50_000_000
    for i in range(200):  # every 4th frame stamped 0.9 period late, then its successor right after it
        est.add(i * period + (int(0.9 * period) if i % 4 == 1 else 0))
    assert est.missing == 0
    assert est.period_s == pytest.approx(0.05, rel=0.05)


@pytest.mark.parametrize("lost", [0.2, 0.6])
def test_loss_estimate_with_jittery_stamps_and_random_loss_is_close(lost: float) -> None:
    from perception_pkg.runtime.stats import LossEstimate

    rng = np.random.default_rng(5)
    period = 40_000_000
    est = LossEstimate(pause_s=1.0)
    sent = 1000
    kept = np.flatnonzero(rng.random(sent) > lost)
    jitter = rng.uniform(-0.1, 0.1, sent) * period  # stamps up to 10% of a period off
    for i in kept:
        est.add(int(i * period + jitter[i]))
    truth = int(kept[-1] + 1 - kept[0] - len(kept))
    assert abs(est.missing - truth) <= 0.01 * truth + 2, (est.missing, truth)


def test_loss_estimate_sees_a_pause_not_loss_and_counts_stamps_going_back() -> None:
    from perception_pkg.runtime.stats import LossEstimate

    est = LossEstimate(pause_s=1.0)
    for i in range(20):
        est.add(i * 100_000_000)  # 10 Hz
    assert est.add(20 * 100_000_000 + 5_000_000_000) == 0  # a 5 s pause of the camera
    assert est.add(19 * 100_000_000) == 0 and est.out_of_order == 1  # a restart (bag loop)
    assert est.missing == 0
    assert est.add(19 * 100_000_000 + 400_000_000) == 3  # 4 periods: 3 missing
    # a late frame and its catch-up: no loss in the end
    assert est.add(19 * 100_000_000 + 600_000_000) == 1
    assert est.add(19 * 100_000_000 + 610_000_000) == -1
    assert est.missing == 3
