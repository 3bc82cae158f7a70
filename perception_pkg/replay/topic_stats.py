"""Per-topic statistics of a bag: counts, rates, image sizes, point-cloud statistics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perception_pkg.msgs import MessageFormatError, pointcloud_to_xyz

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CLOUD = "sensor_msgs/msg/PointCloud2"
# array messages whose length is worth a statistic: type -> field holding the items
ITEMS = {
    "vision_msgs/msg/Detection2DArray": "detections",
    "vision_msgs/msg/Detection3DArray": "detections",
    "perception_msgs/msg/PersonArray": "people",
}


@dataclass
class TopicStats:
    topic: str
    msgtype: str
    count: int = 0
    malformed: int = 0
    last_error: str = ""
    first_ns: int | None = None
    last_ns: int | None = None
    sizes: Counter = field(default_factory=Counter)  # "WxH encoding" or compressed format
    points: list[int] = field(default_factory=list)  # finite points per cloud
    raw_points: list[int] = field(default_factory=list)  # width*height per cloud
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    range_sum: float = 0.0
    items: list[int] = field(default_factory=list)  # detections / people per message

    def add(self, msg: Any, stamp_ns: int) -> None:
        self.count += 1
        self.first_ns = stamp_ns if self.first_ns is None else min(self.first_ns, stamp_ns)
        self.last_ns = stamp_ns if self.last_ns is None else max(self.last_ns, stamp_ns)
        try:
            if self.msgtype == IMAGE:
                self.sizes[f"{msg.width}x{msg.height} {msg.encoding}"] += 1
            elif self.msgtype == COMPRESSED:
                self.sizes[msg.format or "unknown"] += 1
            elif self.msgtype == CLOUD:
                self._add_cloud(msg)
            elif self.msgtype in ITEMS:
                self.items.append(len(getattr(msg, ITEMS[self.msgtype])))
        except MessageFormatError as exc:
            self.malformed += 1
            self.last_error = str(exc)

    def _add_cloud(self, msg: Any) -> None:
        xyz = pointcloud_to_xyz(msg, skip_nans=True)
        self.raw_points.append(int(msg.width) * int(msg.height))
        self.points.append(int(xyz.shape[0]))
        if xyz.shape[0]:
            lo, hi = xyz.min(axis=0), xyz.max(axis=0)
            self.lo = lo if self.lo is None else np.minimum(self.lo, lo)
            self.hi = hi if self.hi is None else np.maximum(self.hi, hi)
            self.range_sum += float(np.linalg.norm(xyz, axis=1).mean())

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.msgtype, "count": self.count}
        if self.count >= 2 and self.last_ns and self.first_ns is not None and self.last_ns > self.first_ns:
            out["rate_hz"] = round((self.count - 1) / ((self.last_ns - self.first_ns) * 1e-9), 3)
        if self.malformed:
            out["malformed"] = self.malformed
            out["last_error"] = self.last_error
        if self.sizes:
            out["sizes"] = dict(self.sizes)
        if self.items:
            out["items"] = {"per_msg": round(float(np.mean(self.items)), 2), "total": int(sum(self.items))}
        if self.points:
            pts = np.asarray(self.points)
            out["points"] = {
                "mean": float(pts.mean()),
                "min": int(pts.min()),
                "max": int(pts.max()),
                "finite_share": float(pts.sum() / max(1, sum(self.raw_points))),
            }
            if self.lo is not None:
                out["points"]["bounds_min"] = [round(float(v), 3) for v in self.lo]
                out["points"]["bounds_max"] = [round(float(v), 3) for v in self.hi]
                out["points"]["mean_range_m"] = round(self.range_sum / len(self.points), 3)
        return out
