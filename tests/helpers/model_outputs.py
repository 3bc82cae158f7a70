"""The shipped models' real outputs on simulator frames, for the equality tests of the host-side code (the
fast decoders, solver and preprocessing against their reference implementations). No tests here.

Frames are rendered without shadows (~0.1 s each at 640x480) and computed once per test session.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pytest

# (scene seed, frame index): the benchmark's frame (12 objects at score 0.3) and two more scenes
DETECTION_FRAMES = ((7, 3), (1, 0), (3, 5))
HW = (480, 640)


@dataclass(frozen=True)
class DetectorFrame:
    image: np.ndarray  # BGR
    camera: Any  # CameraModel
    prepared: Any  # Prepared (the network input and its map)
    outputs: dict[str, np.ndarray]  # raw engine outputs
    detections: Any  # Detections in image pixels, above the node's score threshold (0.3)


def _require_detector() -> Any:
    pytest.importorskip("open3d", reason="the simulator needs open3d")
    from perception_pkg.detection import default_detector_card

    if not default_detector_card().is_file():
        pytest.skip("shipped detector card absent (models/sim_detector)")


@lru_cache(maxsize=1)
def _detector() -> Any:
    from perception_pkg.detection import Detector

    return Detector.from_card(backend="onnxruntime", score_threshold=0.3, threads=1)


def detector() -> Any:
    """The shipped detector (onnxruntime, one thread, the node's score threshold 0.3)."""
    _require_detector()
    return _detector()


@lru_cache(maxsize=1)
def _frames() -> tuple[DetectorFrame, ...]:
    from perception_pkg.sim import SceneConfig, generate_scene
    from perception_pkg.sim.bag import camera_model
    from perception_pkg.sim.render import render_frame

    det = _detector()
    out = []
    for seed, index in DETECTION_FRAMES:
        scene = generate_scene(seed, SceneConfig.with_sensors(width=HW[1], height=HW[0], azimuth_steps=300))
        bgr = np.ascontiguousarray(render_frame(scene, index, shadows=False).image[..., ::-1])
        prepared = det.runner.preprocess(bgr)
        outputs = det.runner.infer(prepared)
        dets = det.runner.decode(outputs, prepared)
        dets = dets.select(dets.scores >= det.score_threshold)
        out.append(DetectorFrame(bgr, camera_model(scene), prepared, outputs, dets))
    return tuple(out)


def detector_frames() -> tuple[DetectorFrame, ...]:
    """The shipped detector on :data:`DETECTION_FRAMES` (skips without open3d or the card)."""
    _require_detector()
    return _frames()
