"""Deterministic camera + LiDAR street simulator with exact ground truth (numpy, OpenCV, open3d; no ROS).

Typical use::

    from perception_pkg.sim import SceneConfig, generate_scene, render_frame

    scene = generate_scene(seed=0, config=SceneConfig(frames=10))
    frame = render_frame(scene, 0)       # .image, .depth, .instance, .points, .objects (ground truth)

    generate("out/sim", seed=0, frames=10, contact_sheet="out/sim/sheet.png")  # bag + dataset + sheet

Conventions (frames, pixels, boxes, keypoint visibility) are documented in ``sensors.py`` and
``truth.py``; topics in ``bag.py``; the dataset layout in ``dataset.py``.
"""

from perception_pkg.sim.bag import SimBagWriter, camera_model
from perception_pkg.sim.dataset import DatasetWriter, load_completion_pair
from perception_pkg.sim.generate import (
    GenerateResult,
    default_sample_bag_path,
    degrade_frame,
    ensure_sample_bag,
    generate,
)
from perception_pkg.sim.people import POSES
from perception_pkg.sim.render import Frame, Renderer, render_frame
from perception_pkg.sim.scene import DETECTION_CLASSES, Scene, SceneConfig, SimObject, generate_scene
from perception_pkg.sim.sensors import CameraSpec, LidarSpec, Rig
from perception_pkg.sim.sheet import contact_sheet, write_contact_sheet
from perception_pkg.sim.truth import Box3D, ObjectGT, surface_samples
from perception_pkg.sim.weather import WEATHER_KINDS, degrade, fog, ray_distance


def write_bag(path, scene: Scene, frames, degraded=None, weather=()) -> None:
    """Write already rendered ``frames`` of ``scene`` to a new rosbag2 (mcap) at ``path``.

    ``degraded`` maps frame index -> {kind: image} for the ``weather`` kinds; for a one-call
    render-and-write use ``generate``.
    """
    with SimBagWriter(path, scene, weather) as writer:
        for f in frames:
            writer.write(f, None if degraded is None else degraded[f.index])


def write_datasets(root, scene: Scene, frames, degraded=None, weather=(), severities=(3,)) -> None:
    """Write already rendered ``frames`` as the on-disk datasets (see ``dataset.py``).

    ``degraded`` maps frame index -> {(kind, severity): image}.
    """
    renderer = getattr(scene, "_renderer", None) or Renderer(scene)
    writer = DatasetWriter(root, scene, weather=weather, severities=severities)
    for f in frames:
        writer.write(f, renderer, {} if degraded is None else degraded[f.index])
    writer.close()


__all__ = [
    "DETECTION_CLASSES",
    "POSES",
    "WEATHER_KINDS",
    "Box3D",
    "CameraSpec",
    "DatasetWriter",
    "Frame",
    "GenerateResult",
    "LidarSpec",
    "ObjectGT",
    "Renderer",
    "Rig",
    "Scene",
    "SceneConfig",
    "SimBagWriter",
    "SimObject",
    "camera_model",
    "contact_sheet",
    "default_sample_bag_path",
    "degrade",
    "degrade_frame",
    "ensure_sample_bag",
    "fog",
    "generate",
    "generate_scene",
    "load_completion_pair",
    "ray_distance",
    "render_frame",
    "surface_samples",
    "write_bag",
    "write_contact_sheet",
    "write_datasets",
]
