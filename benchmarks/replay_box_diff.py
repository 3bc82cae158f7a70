"""How far apart the detections of two replay output bags are: the check behind a changed replay digest.

    python benchmarks/replay_box_diff.py BEFORE/bag AFTER/bag [--tol-px 1e-4] [--tol-m 1e-4]

For every Detection2DArray / Detection3DArray topic present in both bags, message by message (bag
order): the same number of detections with the same ids, class names and scores, and the largest
difference of any 2D box coordinate (px, xyxy) and of any 3D box field (m; rad for rotation_y; KITTI
layout as ``msgs.detection3d_array_to_kitti`` reads it). MarkerArray topics: the largest difference of
any marker point. Exit status 1 when a difference exceeds its tolerance or the structure differs.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader

from perception_pkg.bag import get_typestore
from perception_pkg.msgs import detection2d_array_to_xyxy, detection3d_array_to_kitti

DET2D = "vision_msgs/msg/Detection2DArray"
DET3D = "vision_msgs/msg/Detection3DArray"
MARKERS = "visualization_msgs/msg/MarkerArray"


def _messages(bag: Path) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    with AnyReader([bag], default_typestore=get_typestore()) as reader:
        for conn, _t, raw in reader.messages():
            if conn.msgtype in (DET2D, DET3D, MARKERS):
                out[conn.topic].append((conn.msgtype, reader.deserialize(raw, conn.msgtype)))
    return out


def _ids(msg: Any) -> list[str]:
    return [d.id for d in msg.detections]


def compare(before: Path, after: Path) -> dict[str, dict[str, Any]]:
    a, b = _messages(before), _messages(after)
    report: dict[str, dict[str, Any]] = {}
    for topic in sorted(set(a) & set(b)):
        kind = a[topic][0][0]
        row: dict[str, Any] = {
            "type": kind,
            "messages": len(a[topic]),
            "same_structure": True,
            "max_diff": 0.0,
        }
        if len(a[topic]) != len(b[topic]):
            row["same_structure"] = False
        objects = 0
        for (_, ma), (_, mb) in zip(a[topic], b[topic], strict=False):
            if kind == MARKERS:
                pa = [(p.x, p.y, p.z) for m in ma.markers for p in m.points]
                pb = [(p.x, p.y, p.z) for m in mb.markers for p in m.points]
                same = [(m.ns, m.id, m.action, m.text) for m in ma.markers] == [
                    (m.ns, m.id, m.action, m.text) for m in mb.markers
                ]
                if not same or len(pa) != len(pb):
                    row["same_structure"] = False
                    continue
                if pa:
                    row["max_diff"] = max(row["max_diff"], float(np.abs(np.array(pa) - np.array(pb)).max()))
                objects += len(ma.markers)
                continue
            read = detection2d_array_to_xyxy if kind == DET2D else detection3d_array_to_kitti
            ba, sa, la = read(ma)[:3]
            bb, sb, lb = read(mb)[:3]
            if _ids(ma) != _ids(mb) or la != lb or not np.array_equal(sa, sb):
                row["same_structure"] = False
                continue
            if len(ba):
                row["max_diff"] = max(row["max_diff"], float(np.abs(ba - bb).max()))
            objects += len(ba)
        row["objects"] = objects
        report[topic] = row
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--tol-px", type=float, default=1e-4, help="2D boxes (pixels)")
    ap.add_argument("--tol-m", type=float, default=1e-4, help="3D boxes and 3D markers (metres, radians)")
    args = ap.parse_args(argv)
    ok = True
    for topic, r in compare(args.before, args.after).items():
        tol = args.tol_px if r["type"] == DET2D or "pose" in topic else args.tol_m
        good = r["same_structure"] and r["max_diff"] < tol
        ok &= good
        unit = "px" if r["type"] == DET2D or "pose" in topic else "m"
        print(
            f"{topic:<36} {r['messages']:>4} msgs {r['objects']:>5} objects  same ids/labels/scores "
            f"{'yes' if r['same_structure'] else 'NO '}  max |diff| {r['max_diff']:.3g} {unit}  "
            f"{'ok' if good else 'EXCEEDS ' + format(tol, 'g')}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
