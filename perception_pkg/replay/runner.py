"""Replay a rosbag2 (sqlite3 or mcap): topic statistics, enabled pipelines, an output bag, a summary."""

from __future__ import annotations

import json
import logging
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
from perception_pkg.msgs import MessageFactory, MessageFormatError
from perception_pkg.paths import config_dir
from perception_pkg.replay.routing import RoutedPipeline
from perception_pkg.replay.topic_stats import TopicStats
from perception_pkg.runtime.settings import ConfigError, read_params_file

log = logging.getLogger("perception_pkg.replay")


@dataclass
class ReplayResult:
    summary: dict[str, Any]
    summary_path: Path
    output_bag: Path | None


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
) -> ReplayResult:
    """Read ``bag``, run ``pipelines`` on it, write ``out_dir``/summary.json and ``out_dir``/bag (mcap)."""
    bag, out_dir = Path(bag), Path(out_dir)
    if not bag.exists():
        raise FileNotFoundError(f"bag not found: {bag}")
    out_dir.mkdir(parents=True, exist_ok=True)
    store = get_typestore()
    types = MessageFactory.rosbags(store)
    enabled = load_pipelines(pipelines or [], params_file, types, overrides)

    out_bag = out_dir / "bag"
    t_start = time.perf_counter()
    # a rosbag2, a ROS 1 bag, an image folder or a video (``fps`` and ``calib`` for the last two)
    with open_recording(bag, store, fps=fps, calib=calib) as reader:
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
            if out_bag.exists():
                raise FileExistsError(f"output bag exists, remove it first: {out_bag}")
            writer = BagWriter(out_bag, typestore=store).open()
            wanted = [(c.topic, c.msgtype) for c in reader.connections] if copy_inputs else []
            wanted += produced_all
            # a bag may hold several connections on one topic (split recordings): one output each
            for topic, msgtype in wanted:
                if topic not in writer:
                    writer.add_connection(topic, msgtype)
        timings: dict[str, list[float]] = {p.name: [] for p in enabled}
        failures: dict[str, int] = {p.name: 0 for p in enabled}

        def emit(stamp: int, outputs: list[tuple[str, Any]]) -> None:
            for topic, out_msg in outputs:
                if topic not in stats:
                    stats[topic] = TopicStats(topic, out_msg.__msgtype__)
                stats[topic].add(out_msg, stamp)
            if writer is not None:
                for topic, out_msg in outputs:
                    writer.write(topic, stamp, out_msg)

        bar = tqdm(total=reader.message_count, unit="msg", disable=not progress, desc=bag.name)
        try:
            for m in reader.messages():
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
                _dispatch(enabled, [(0, m.topic, m.msgtype, msg)], m.stamp, timings, failures, emit)
            for i, p in enumerate(enabled):  # images still waiting for a partner at the end of the bag
                outputs = p.finish()
                emit(reader.end_time, outputs)
                queued = [(i + 1, t, o.__msgtype__, o) for t, o in outputs]
                _dispatch(enabled, queued, reader.end_time, timings, failures, emit)
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        duration_s = reader.duration * 1e-9 if reader.message_count else 0.0

    wall = time.perf_counter() - t_start
    summary: dict[str, Any] = {
        "bag": str(bag),
        "messages": sum(s.count for s in stats.values()),
        "bag_duration_s": round(duration_s, 3),
        "replay_wall_s": round(wall, 3),
        "speed_vs_realtime": round(duration_s / wall, 2) if wall > 0 and duration_s > 0 else None,
        "topics": {t: s.summary() for t, s in sorted(stats.items())},
        "pipelines": {
            name: {
                "messages": len(ts),
                "skipped_malformed": failures[name],
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
    return ReplayResult(summary, summary_path, out_bag if write_bag else None)


def _dispatch(
    enabled: list[RoutedPipeline],
    pending: list[tuple[int, str, str, Any]],
    stamp: int,
    timings: dict[str, list[float]],
    failures: dict[str, int],
    emit: Any,
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
            timings[p.name].append(time.perf_counter() - t0)
            emit(stamp, outputs)
            pending += [(i + 1, t, o.__msgtype__, o) for t, o in outputs]
