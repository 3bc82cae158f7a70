"""cloud_filter: drops non-finite points, crops by range and box, optionally voxel down-samples.

Input ``cloud`` (sensor_msgs/PointCloud2, ``input_topic``) -> output ``filtered`` (PointCloud2,
``output_topic``): same header, every field of the kept points, ``is_dense`` true. A cloud without
x, y and z fields is malformed input (counted, skipped), on a live graph and in replay alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perception_pkg.msgs import MessageFormatError, pointcloud_to_structured, structured_to_pointcloud
from perception_pkg.msgs.factory import MessageFactory
from perception_pkg.pipelines.base import Job, Pipeline, Port, Wanted
from perception_pkg.pointcloud import CloudFilter
from perception_pkg.runtime.settings import setting

CLOUD = "sensor_msgs/msg/PointCloud2"
_INF = float("inf")


@dataclass(frozen=True)
class CloudFilterSettings:
    input_topic: str = setting("/lidar/points", "PointCloud2 to filter")
    output_topic: str = setting("/lidar/points_filtered", "filtered PointCloud2")
    range_min: float = setting(1.0, "drop points closer than this (m)", minimum=0.0)
    range_max: float = setting(120.0, "drop points farther than this (m)")
    box_min: tuple = setting((-120.0, -120.0, -5.0), "crop box min x,y,z (m)", length=3)
    box_max: tuple = setting((120.0, 120.0, 10.0), "crop box max x,y,z (m)", length=3)
    voxel_size: float = setting(0.0, "voxel edge (m); 0 keeps all", minimum=0.0)

    def __post_init__(self) -> None:
        self.cloud_filter()  # the filter's own checks (range and box order) at configuration time

    def cloud_filter(self) -> CloudFilter:
        return CloudFilter(
            range_min=self.range_min,
            range_max=self.range_max,
            box_min=tuple(self.box_min),
            box_max=tuple(self.box_max),
            voxel_size=self.voxel_size,
        )


class CloudFilterPipeline(Pipeline):
    name = "cloud_filter"

    def __init__(self, settings: CloudFilterSettings, types: MessageFactory) -> None:
        super().__init__(types)
        self.settings = settings
        self.filter = settings.cloud_filter()
        self.inputs = [Port("cloud", settings.input_topic, CLOUD)]
        self.outputs = [Port("filtered", settings.output_topic, CLOUD)]

    def run(self, job: Job, wanted: Wanted | None = None) -> list[tuple[str, Any]]:
        msg = job.msg
        points = pointcloud_to_structured(msg)
        names = points.dtype.names or ()
        if not {"x", "y", "z"} <= set(names):
            raise MessageFormatError(CLOUD, "fields", "x, y, z", ", ".join(names) or "none")
        kept = self.filter.apply(points)
        return [("filtered", structured_to_pointcloud(kept, msg.header, self.types, is_dense=True))]


def create(settings: CloudFilterSettings, types: MessageFactory, *, live: bool) -> CloudFilterPipeline:
    del live  # same behaviour on a live graph and in replay
    return CloudFilterPipeline(settings, types)
