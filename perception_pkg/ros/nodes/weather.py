"""weather node: camera frames in, restored frames out (fog, rain, snow, night): a drop-in camera.

Subscribes  image_topic               sensor_msgs/Image, or CompressedImage with ``compressed: true``
                                      (latest-frame processing, older frames dropped and counted)
            camera_info_topic         sensor_msgs/CameraInfo, paired with the image by stamp
Publishes   output_topic              sensor_msgs/Image of the input's size, the input header
            output_camera_info_topic  the matching CameraInfo, the image's header
Remap detection's (or pose's) image_topic and camera_info_topic onto the two outputs to run them on the
restored stream.

Modes (``mode``): ``auto`` (the condition classifier and the gate decide; a frame passed is republished
as it is), ``always``, ``off``. /diagnostics adds the condition histogram, gate decisions (restored /
passed), the last condition and confidence and stage timings to the common counters. Bad input is
counted as ``malformed`` and skipped. The work and the parameters: :mod:`perception_pkg.pipelines.weather`
(replay runs the same).
"""

from __future__ import annotations

from typing import Any

from perception_pkg.ros.node_base import PipelineNode


class WeatherNode(PipelineNode):
    """``restorer`` replaces the card-built one (tests, or an application that builds its own)."""

    pipeline_name = "weather"

    def __init__(self, *, restorer: Any = None, **kwargs: Any) -> None:
        super().__init__(create_options={"restorer": restorer} if restorer is not None else None, **kwargs)


def main(args: list[str] | None = None) -> None:
    from perception_pkg.ros.launcher import run_nodes

    run_nodes(["weather"], ros_args=args)
