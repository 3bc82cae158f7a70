"""Training / evaluation sets on disk from simulated frames.

Layout under the dataset folder::

    dataset.json                 seed, frame count, sensors, calibration, conventions, file list
    images/clean/000000.png      RGB frames
    images/<kind>_s<sev>/...     degraded copies, same file names: pairs with images/clean
    depth/000000.png             uint16 camera Z in millimetres (0 = sky / beyond 65.5 m)
    annotations/detection.json   COCO detection (person, car), one image entry per clean frame
    annotations/keypoints.json   COCO person keypoints (the same persons, same ids)
    lidar/000000.npz             points (N, 4) x, y, z, intensity (LiDAR frame), point_ids, rings
    objects/000000_0017.npz      per object with >= min_lidar_points returns: partial (N, 4) in the
                                 LiDAR frame, box_lidar (x, y, z centre, l, w, h, yaw), T_lidar_object,
                                 cls, shape (name of its complete-shape file)
    shapes/<shape>.npz           complete_2048, complete_16384: outer-surface samples in the
                                 object frame (shared by all frames in which the shape is rigid)

COCO coordinates follow COCO itself: ``bbox`` = [x, y, w, h] in continuous image coordinates where
pixel i spans [i, i + 1] (the modal box of truth.py shifted by +0.5); keypoints are pixel-centre
coordinates (pixel i centred on i, as detectron2 and mmpose read them), v in {0, 1, 2}, x = y = 0
when v = 0. ``area`` = visible pixels. Extra fields per annotation: track_id (object id),
amodal_bbox (same convention as bbox), truncated, box3d_camera (KITTI: dimensions h, w, l; location =
bottom centre in the camera frame; rotation_y), num_lidar_points.

``.npz`` files are written with a fixed zip timestamp so the same seed gives identical bytes.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from perception_pkg.pose.coco17 import KEYPOINT_NAMES, SKELETON
from perception_pkg.sim.render import Frame, Renderer
from perception_pkg.sim.scene import DETECTION_CLASSES, Scene
from perception_pkg.sim.truth import ObjectGT

COMPLETE_SIZES = (2048, 16384)
CATEGORY_IDS = {name: i + 1 for i, name in enumerate(DETECTION_CLASSES)}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def save_npz(path: Path, **arrays: Any) -> None:
    """Like ``np.savez`` but byte-reproducible (numpy stamps entries with the wall clock).

    Stored uncompressed: float point clouds deflate by only ~10% and compressing cost more time
    than writing them.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def _write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1] if rgb.ndim == 3 else rgb)):
        raise OSError(f"could not write {path}")


def _coco_box(box: np.ndarray) -> list[float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    return [x0 + 0.5, y0 + 0.5, x1 - x0, y1 - y0]


def box_lidar_vector(o: ObjectGT) -> np.ndarray:
    """(7,) x, y, z (geometric centre), l, w, h, yaw in the LiDAR frame."""
    b = o.box3d_lidar
    return np.array([*b.centre, *b.size, b.yaw_about_z()], np.float32)


class DatasetWriter:
    """Writes frames into a dataset folder; ``close()`` writes the json files."""

    def __init__(
        self,
        root: str | Path,
        scene: Scene,
        *,
        weather: Sequence[str] = (),
        severities: Sequence[int] = (3,),
        min_visible_pixels: int = 20,
        min_lidar_points: int = 5,
        complete_sizes: Sequence[int] = COMPLETE_SIZES,
        objects: bool = True,
    ) -> None:
        self.root = Path(root)
        self.scene = scene
        self.weather = tuple(weather)
        self.severities = tuple(severities)
        self.min_visible_pixels = min_visible_pixels
        self.min_lidar_points = min_lidar_points
        self.complete_sizes = tuple(complete_sizes)
        self.objects = objects  # per-object LiDAR crops + complete shapes (completion); the slow part
        self.images: list[dict] = []
        self.det_annotations: list[dict] = []
        self.kp_annotations: list[dict] = []
        self.object_files: list[str] = []
        self._shapes_written: set[str] = set()
        self.root.mkdir(parents=True, exist_ok=True)

    def write(self, frame: Frame, renderer: Renderer, degraded: dict[tuple[str, int], np.ndarray]) -> None:
        """One frame; ``degraded`` maps (kind, severity) -> RGB image."""
        name = f"{frame.index:06d}"
        _write_png(self.root / "images" / "clean" / f"{name}.png", frame.image)
        for kind in self.weather:
            for sev in self.severities:
                _write_png(self.root / "images" / f"{kind}_s{sev}" / f"{name}.png", degraded[(kind, sev)])
        depth_mm = np.where(np.isfinite(frame.depth), np.minimum(frame.depth * 1000.0 + 0.5, 65535), 0)
        _write_png(self.root / "depth" / f"{name}.png", depth_mm.astype(np.uint16))
        save_npz(
            self.root / "lidar" / f"{name}.npz",
            points=frame.points,
            point_ids=frame.point_ids,
            rings=frame.point_rings,
        )
        image_id = frame.index + 1
        h, w = frame.image.shape[:2]
        self.images.append(
            {
                "id": image_id,
                "file_name": f"images/clean/{name}.png",
                "width": w,
                "height": h,
                "frame_index": frame.index,
                "stamp_ns": frame.stamp_ns,
            }
        )
        for o in frame.objects:
            if o.box2d is not None and o.visible_pixels >= self.min_visible_pixels:
                self._annotate(o, image_id)
            if self.objects and o.num_lidar_points >= self.min_lidar_points:
                self._object_file(frame, renderer, o, name)

    def _annotate(self, o: ObjectGT, image_id: int) -> None:
        assert o.box2d is not None
        ann: dict[str, Any] = {
            "id": len(self.det_annotations) + 1,
            "image_id": image_id,
            "category_id": CATEGORY_IDS[o.cls],
            "bbox": _coco_box(o.box2d),
            "area": o.visible_pixels,
            "iscrowd": 0,
            "track_id": o.oid,
            "amodal_bbox": None if o.box2d_amodal is None else _coco_box(o.box2d_amodal),
            "truncated": o.truncated,
            "box3d_camera": o.box3d_camera.kitti(),
            "num_lidar_points": o.num_lidar_points,
        }
        self.det_annotations.append(ann)
        if o.keypoints is not None:
            kps = o.keypoints.copy()
            kps[kps[:, 2] == 0, :2] = 0.0
            kp_ann = dict(ann)
            kp_ann["keypoints"] = [float(v) if i % 3 < 2 else int(v) for i, v in enumerate(kps.ravel())]
            kp_ann["num_keypoints"] = int(np.count_nonzero(kps[:, 2] > 0))
            self.kp_annotations.append(kp_ann)

    def _object_file(self, frame: Frame, renderer: Renderer, o: ObjectGT, name: str) -> None:
        obj = self.scene.by_id[o.oid]
        key = obj.shape_key(frame.t)
        shape = f"obj{o.oid:04d}" + (f"_f{frame.index:06d}" if len(key) > 1 else "")
        if shape not in self._shapes_written:
            save_npz(
                self.root / "shapes" / f"{shape}.npz",
                **{f"complete_{n}": renderer.complete_points(o.oid, frame.t, n) for n in self.complete_sizes},
            )
            self._shapes_written.add(shape)
        rel = f"objects/{name}_{o.oid:04d}.npz"
        save_npz(
            self.root / rel,
            partial=frame.points[o.lidar_index],
            box_lidar=box_lidar_vector(o),
            T_lidar_object=o.T_lidar_object.astype(np.float32),
            cls=np.array(o.cls),
            shape=np.array(shape),
            frame_index=np.array(frame.index),
            object_id=np.array(o.oid),
        )
        self.object_files.append(rel)

    def close(self) -> None:
        info = {
            "description": "perception_pkg simulator",
            "seed": self.scene.seed,
            "bbox_convention": "COCO [x, y, w, h], pixel i spans [i, i+1]; modal (visible pixels)",
            "keypoint_convention": "pixel centres at integers; v: 0 outside, 1 occluded, 2 visible",
        }
        categories = [{"id": i, "name": n, "supercategory": n} for n, i in CATEGORY_IDS.items()]
        det = {
            "info": info,
            "images": self.images,
            "annotations": self.det_annotations,
            "categories": categories,
        }
        person = {
            "id": CATEGORY_IDS["person"],
            "name": "person",
            "supercategory": "person",
            "keypoints": list(KEYPOINT_NAMES),
            "skeleton": [[a + 1, b + 1] for a, b in SKELETON],
        }
        kp = {"info": info, "images": self.images, "annotations": self.kp_annotations, "categories": [person]}
        (self.root / "annotations").mkdir(parents=True, exist_ok=True)
        _dump(self.root / "annotations" / "detection.json", det)
        _dump(self.root / "annotations" / "keypoints.json", kp)
        rig = self.scene.rig
        cam = rig.camera
        manifest = {
            "seed": self.scene.seed,
            "frames": len(self.images),
            "fps": self.scene.config.fps,
            "camera": {
                "width": cam.width,
                "height": cam.height,
                "K": cam.K.tolist(),
                "frame_id": cam.frame_id,
            },
            "lidar": {
                "beams": rig.lidar.beams,
                "azimuth_steps": rig.lidar.azimuth_steps,
                "elevations_deg": rig.lidar.elevations().tolist(),
                "range_noise_m": rig.lidar.range_noise,
                "frame_id": rig.lidar.frame_id,
            },
            "T_base_lidar": rig.T_base_lidar.tolist(),
            "T_base_camera": rig.T_base_camera.tolist(),
            "T_camera_lidar": rig.T_camera_lidar.tolist(),
            "weather": {"kinds": list(self.weather), "severities": list(self.severities)},
            "min_visible_pixels": self.min_visible_pixels,
            "min_lidar_points": self.min_lidar_points,
            "complete_sizes": list(self.complete_sizes),
            "object_files": self.object_files,
        }
        _dump(self.root / "dataset.json", manifest)


def _dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def load_completion_pair(root: str | Path, object_file: str, n: int = 2048) -> dict[str, np.ndarray]:
    """Partial LiDAR points and the complete shape of one object, both in the LiDAR frame."""
    root = Path(root)
    with np.load(root / object_file) as f:
        obj = {k: f[k] for k in f.files}
    with np.load(root / "shapes" / f"{obj['shape']}.npz") as s:
        complete = s[f"complete_{n}"]
    t = obj["T_lidar_object"].astype(np.float64)
    obj["complete"] = (complete @ t[:3, :3].T + t[:3, 3]).astype(np.float32)
    return obj
