"""Replay a rosbag2 (sqlite3 or mcap): topic statistics, enabled pipelines, an output bag, a summary.

The output folder follows :mod:`perception_pkg.replay.output` (a marker file says it is ours; nothing
else in it is touched). Ctrl-C (SIGINT) stops the run between two messages: the output bag is closed
with every message written so far, and summary.json says what was done, with ``"interrupted": true``
(a second Ctrl-C stops inside the current message). A damaged bag is read as far as it can be
(:mod:`perception_pkg.bag.reader`); summary.json's ``bag_damage`` says how far and where it stopped.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from perception_pkg import pipelines as registry
from perception_pkg.bag import BagWriter, get_typestore
from perception_pkg.datasets.recordings import open_recording
from perception_pkg.engines.base import NonFiniteOutput
from perception_pkg.msgs import MessageFactory, MessageFormatError
from perception_pkg.paths import config_dir
from perception_pkg.replay.output import check_output
from perception_pkg.replay.routing import RoutedPipeline
from perception_pkg.replay.topic_stats import TopicStats
from perception_pkg.runtime.settings import ConfigError, read_params_file

log = logging.getLogger("perception_pkg.replay")


@dataclass
class ReplayResult:
    summary: dict[str, Any]
    summary_path: Path
    output_bag: Path | None
    interrupted: bool = False  # stopped by Ctrl-C (SIGINT): the outputs hold what was done until then


class _StopOnSigint:
    """While active (main thread only), SIGINT sets ``hit`` for the run loop to stop between messages;
    a second SIGINT raises KeyboardInterrupt as usual."""

    def __init__(self) -> None:
        self.hit = False
        self._previous: Any = None

    def __enter__(self) -> _StopOnSigint:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.hit:
            raise KeyboardInterrupt
        self.hit = True
        log.warning("interrupted: stopping after this message (Ctrl-C again stops at once)")

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def load_pipelines(
    names: list[str],
    params_file: str | Path | None,
    types: MessageFactory,
    overrides: Mapping[str, Any] | None = None,
) -> list[RoutedPipeline]:
    """The named pipelines with their node's settings from the params file (default
    config/perception.yaml) and ``overrides`` (``{"node.param": value}``, as ``ros2 run -p`` would set
    them), validated as the nodes validate them: a ConfigError names a bad parameter."""
    params_path = Path(params_file) if params_file else config_dir() / "perception.yaml"
    overrides = dict(overrides or {})
    for key in overrides:
        node, _, param = key.partition(".")
        if not param or node not in names:
            raise ConfigError(f"override '{key}': expected NODE.PARAM with NODE one of {names}")
    configured = []
    for name in names:  # every pipeline's settings are checked before any model is loaded
        spec = registry.get(name)
        params = read_params_file(params_path, name)
        params.update({k.partition(".")[2]: v for k, v in overrides.items() if k.partition(".")[0] == name})
        configured.append((spec, spec.settings_from(params)))
    return [RoutedPipeline(spec.create(settings, types, live=False)) for spec, settings in configured]


def replay_bag(
    bag: str | Path,
    out_dir: str | Path,
    pipelines: list[str] | None = None,
    *,
    params_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    fps: float = 10.0,
    calib: str | Path | None = None,
    write_bag: bool = True,
    copy_inputs: bool = True,
    progress: bool = True,
    force: bool = False,
) -> ReplayResult:
    """Read ``bag``, run ``pipelines`` on it, write ``out_dir``/summary.json and ``out_dir``/bag (mcap).

    ``force`` replaces the outputs of an earlier run in ``out_dir`` (only those; see
    :mod:`perception_pkg.replay.output`); OutputFolderError (a ValueError) for a folder we may not use.
    """
    bag, out_dir = Path(bag), Path(out_dir)
    if not bag.exists():
        raise FileNotFoundError(f"bag not found: {bag}")
    folder = check_output(out_dir, force, "perception replay")
    store = get_typestore()
    types = MessageFactory.rosbags(store)
    enabled = load_pipelines(pipelines or [], params_file, types, overrides)

    out_bag = out_dir / "bag"
    t_start = time.perf_counter()
    # a rosbag2, a ROS 1 bag, an image folder or a video (``fps`` and ``calib`` for the last two)
    # Ctrl-C from here on stops between two messages (_StopOnSigint); the summary says what was done
    with open_recording(bag, store, fps=fps, calib=calib) as reader, _StopOnSigint() as stop:
        # the folder is touched only once the recording opened: a bag that cannot be read changes nothing
        folder.claim(["summary.json", "bag"] if write_bag else ["summary.json"])
        stats = {c.topic: TopicStats(c.topic, c.msgtype) for c in reader.connections}
        # a pipeline sees the bag's topics and the outputs of the pipelines before it (detection
        # feeds pose, as the nodes do on a live graph)
        available = [(c.topic, c.msgtype) for c in reader.connections]
        produced_all: list[tuple[str, str]] = []
        for p in enabled:
            p.bind(available)
            produced = [o for t, mt in available if p.wants(t, mt) for o in p.outputs_for(t)]
            produced_all += produced
            available += produced
        writer = None
        if write_bag:
            writer = BagWriter(out_bag, typestore=store).open()
            wanted = [(c.topic, c.msgtype) for c in reader.connections] if copy_inputs else []
            wanted += produced_all
            # a bag may hold several connections on one topic (split recordings): one output each
            for topic, msgtype in wanted:
                if topic not in writer:
                    writer.add_connection(topic, msgtype)
        timings: dict[str, list[float]] = {p.name: [] for p in enabled}
        failures: dict[str, int] = {p.name: 0 for p in enabled}
        errors: dict[str, list[str]] = {p.name: [] for p in enabled}  # processing errors, as a node counts

        def emit(stamp: int, outputs: list[tuple[str, Any]]) -> None:
            for topic, out_msg in outputs:
                if topic not in stats:
                    stats[topic] = TopicStats(topic, out_msg.__msgtype__)
                stats[topic].add(out_msg, stamp)
            if writer is not None:
                for topic, out_msg in outputs:
                    writer.write(topic, stamp, out_msg)

        bar = tqdm(total=reader.message_count, unit="msg", disable=not progress, desc=bag.name)
        read = 0
        try:
            for m in reader.messages():
                if stop.hit:  # Ctrl-C: stop between two messages
                    break
                read += 1
                bar.update()
                if writer is not None and copy_inputs:
                    writer.write(m.topic, m.stamp, m.raw)
                msg = reader.deserialize(m)
                if msg is None:  # truncated or corrupt CDR: the reader counted it, keep going
                    st = stats[m.topic]
                    st.count += 1
                    st.malformed += 1
                    st.last_error = f"deserialize: {reader.errors[m.topic]}"
                    continue
                stats[m.topic].add(msg, m.stamp)
                _dispatch(enabled, [(0, m.topic, m.msgtype, msg)], m.stamp, timings, failures, emit, errors)
            for i, p in enumerate(enabled):  # images still waiting for a partner at the end of the bag
                if stop.hit:
                    break
                outputs = p.finish()
                emit(reader.end_time, outputs)
                queued = [(i + 1, t, o.__msgtype__, o) for t, o in outputs]
                _dispatch(enabled, queued, reader.end_time, timings, failures, emit, errors)
        except KeyboardInterrupt:  # a second Ctrl-C, inside a message: what was written so far stands
            stop.hit = True
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        interrupted = stop.hit
        damage = getattr(reader, "damage", None)  # image folders and videos have none
        duration_s = reader.duration * 1e-9 if reader.message_count else 0.0
        in_bag = reader.message_count

    wall = time.perf_counter() - t_start
    summary: dict[str, Any] = {
        "bag": str(bag),
        "messages": sum(s.count for s in stats.values()),
        "bag_duration_s": round(duration_s, 3),
        "replay_wall_s": round(wall, 3),
        "speed_vs_realtime": round(duration_s / wall, 2) if wall > 0 and duration_s > 0 else None,
        "complete": not interrupted and damage is None,
        "interrupted": interrupted,
        "bag_messages_read": read,
        "bag_messages": in_bag,
        "bag_damage": damage.as_dict() if damage is not None else None,
        "topics": {t: s.summary() for t, s in sorted(stats.items())},
        "pipelines": {
            name: {
                "messages": len(ts),
                "skipped_malformed": failures[name],
                "errors": len(errors[name]),
                "last_error": errors[name][-1] if errors[name] else None,
                "median_ms": round(float(np.median(ts)) * 1e3, 3) if ts else None,
                "p99_ms": round(float(np.percentile(ts, 99)) * 1e3, 3) if ts else None,
                "counters": p.counters(),
            }
            for p in enabled
            for name, ts in [(p.name, timings[p.name])]
        },
        "output_bag": str(out_bag) if write_bag else None,
    }
    summary_path = out_dir / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2))
    return ReplayResult(summary, summary_path, out_bag if write_bag else None, interrupted)


def _dispatch(
    enabled: list[RoutedPipeline],
    pending: list[tuple[int, str, str, Any]],
    stamp: int,
    timings: dict[str, list[float]],
    failures: dict[str, int],
    emit: Any,
    errors: dict[str, list[str]] | None = None,
) -> None:
    """Feed messages to the pipelines from index ``first`` on; their outputs flow to the later ones."""
    while pending:
        first, topic, msgtype, msg = pending.pop(0)
        for i, p in enumerate(enabled[first:], start=first):
            if not p.wants(topic, msgtype):
                continue
            t0 = time.perf_counter()
            try:
                outputs = p.on_message(topic, msg, stamp)
            except MessageFormatError as exc:
                failures[p.name] += 1
                log.warning("%s skipped a message on %s: %s", p.name, topic, exc)
                continue
            except NonFiniteOutput as exc:  # the model, not the input: counted as a node counts it
                if errors is None:
                    raise
                if not errors[p.name]:
                    log.error("%s: %s (counted under errors in summary.json; logged once)", p.name, exc)
                errors[p.name].append(str(exc))
                continue
            timings[p.name].append(time.perf_counter() - t0)
            emit(stamp, outputs)
            pending += [(i + 1, t, o.__msgtype__, o) for t, o in outputs]
