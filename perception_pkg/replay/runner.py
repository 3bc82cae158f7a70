"""Replay a rosbag2 (sqlite3 or mcap): topic statistics, enabled pipelines, an output bag, a summary."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from tqdm import tqdm

from perception_pkg.bag import get_typestore
from perception_pkg.msgs import MessageFactory, MessageFormatError
from perception_pkg.paths import config_dir
from perception_pkg.replay.pipelines import PIPELINES, ReplayPipeline
from perception_pkg.replay.topic_stats import TopicStats

log = logging.getLogger("perception_pkg.replay")


@dataclass
class ReplayResult:
    summary: dict[str, Any]
    summary_path: Path
    output_bag: Path | None


def node_params(config_file: Path, node: str) -> dict[str, Any]:
    """The ros__parameters of one node in a ROS params YAML (empty when absent)."""
    data = yaml.safe_load(config_file.read_text()) or {}
    return dict((data.get(node) or {}).get("ros__parameters") or {})


def replay_bag(
    bag: str | Path,
    out_dir: str | Path,
    pipelines: list[str] | None = None,
    *,
    params_file: str | Path | None = None,
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
    params_path = Path(params_file) if params_file else config_dir() / "perception.yaml"
    enabled: list[ReplayPipeline] = []
    for name in pipelines or []:
        if name not in PIPELINES:
            raise KeyError(f"unknown pipeline '{name}'; known: {sorted(PIPELINES)}")
        enabled.append(PIPELINES[name](types, node_params(params_path, name)))

    out_bag = out_dir / "bag"
    t_start = time.perf_counter()
    with AnyReader([bag], default_typestore=store) as reader:
        stats = {c.topic: TopicStats(c.topic, c.msgtype) for c in reader.connections}
        writer, out_conns = None, {}
        if write_bag:
            if out_bag.exists():
                raise FileExistsError(f"output bag exists, remove it first: {out_bag}")
            writer = Writer(out_bag, version=8, storage_plugin=StoragePlugin.MCAP)
            writer.open()
            wanted = [(c.topic, c.msgtype) for c in reader.connections] if copy_inputs else []
            # a pipeline sees the bag's topics and the outputs of the pipelines before it (detection
            # feeds pose, as the nodes do on a live graph)
            available = [(c.topic, c.msgtype) for c in reader.connections]
            for p in enabled:
                produced = [
                    o for topic, msgtype in available if p.wants(topic, msgtype) for o in p.outputs_for(topic)
                ]
                wanted += produced
                available += produced
            # a bag may hold several connections on one topic (split recordings): one output each
            for topic, msgtype in wanted:
                if topic not in out_conns:
                    out_conns[topic] = writer.add_connection(topic, msgtype, typestore=store)
        timings: dict[str, list[float]] = {p.name: [] for p in enabled}
        failures: dict[str, int] = {p.name: 0 for p in enabled}

        def emit(stamp: int, outputs: list[tuple[str, Any]]) -> None:
            for topic, out_msg in outputs:
                if topic not in stats:
                    stats[topic] = TopicStats(topic, out_msg.__msgtype__)
                stats[topic].add(out_msg, stamp)
            if writer is not None:
                for topic, out_msg in outputs:
                    writer.write(out_conns[topic], stamp, store.serialize_cdr(out_msg, out_msg.__msgtype__))

        bar = tqdm(total=reader.message_count, unit="msg", disable=not progress, desc=bag.name)
        try:
            for conn, stamp, raw in reader.messages():
                bar.update()
                if writer is not None and copy_inputs:
                    writer.write(out_conns[conn.topic], stamp, raw)
                try:
                    msg = reader.deserialize(raw, conn.msgtype)
                except Exception as exc:  # truncated or corrupt CDR: count it, keep going
                    st = stats[conn.topic]
                    st.count += 1
                    st.malformed += 1
                    st.last_error = f"deserialize: {type(exc).__name__}: {exc}"
                    continue
                stats[conn.topic].add(msg, stamp)
                _dispatch(enabled, [(0, conn.topic, conn.msgtype, msg)], stamp, timings, failures, emit)
            for i, p in enumerate(enabled):  # images still waiting for a partner at the end of the bag
                finish = getattr(p, "finish", None)
                outputs = finish() if finish is not None else []
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
            }
            for name, ts in timings.items()
        },
        "output_bag": str(out_bag) if write_bag else None,
    }
    summary_path = out_dir / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2))
    return ReplayResult(summary, summary_path, out_bag if write_bag else None)


def _dispatch(
    enabled: list[ReplayPipeline],
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
