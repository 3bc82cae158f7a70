"""Message counts and a sha256 per topic of a replay's output bag: the before/after check of a refactor.

    python benchmarks/replay_digest.py OUT_DIR/bag [--json digest.json]

Each topic's digest hashes the CDR bytes of its messages in bag order (log time, then the writer's
order), so two replays that publish the same messages in the same order give the same digest. Topics
whose messages carry wall-clock values (none of the pipelines' outputs do) would differ run to run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from rosbags.highlevel import AnyReader


def digest(bag: Path) -> dict[str, dict[str, object]]:
    """topic -> {type, count, sha256} over the raw CDR of every message."""
    out: dict[str, dict[str, object]] = {}
    hashes: dict[str, hashlib._Hash] = {}
    with AnyReader([bag]) as reader:
        for conn in reader.connections:
            out.setdefault(conn.topic, {"type": conn.msgtype, "count": 0})
            hashes.setdefault(conn.topic, hashlib.sha256())
        for conn, _stamp, raw in reader.messages():
            out[conn.topic]["count"] = int(out[conn.topic]["count"]) + 1  # type: ignore[arg-type]
            hashes[conn.topic].update(bytes(raw))
    for topic, h in hashes.items():
        out[topic]["sha256"] = h.hexdigest()[:16]
    return dict(sorted(out.items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bag", type=Path, help="an output bag of perception replay (OUT/bag)")
    ap.add_argument("--json", type=Path, default=None, help="also write the digest here")
    args = ap.parse_args(argv)
    result = digest(args.bag)
    for topic, d in result.items():
        print(f"{topic:<40} {d['count']:>5}  {d['sha256']}  {d['type']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
