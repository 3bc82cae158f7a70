"""KITTI 3D object files: ``calib/*.txt`` -> a CameraModel for image_2, ``label_2/*.txt`` -> boxes.

Boxes are the stack's KITTI layout ``[x, y, z, h, w, l, rotation_y]`` (geometry3d.box3d): location is the
bottom-face centre in the rectified camera-0 frame, which P2 projects into the left colour image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perception_pkg.geometry3d.camera import CameraModel


def read_calib(path: str | Path) -> dict[str, np.ndarray]:
    """All matrices of a calib file by name (P0..P3 3x4, R0_rect 3x3, Tr_velo_to_cam 3x4, ...)."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if ":" not in line:
            continue
        name, values = line.split(":", 1)
        v = np.array(values.split(), dtype=np.float64)
        out[name.strip()] = v.reshape(3, 4) if v.size == 12 else v.reshape(3, 3) if v.size == 9 else v
    return out


def camera_model(calib: str | Path, hw: tuple[int, int], frame_id: str = "camera") -> CameraModel:
    """The left colour camera (P2, rectified images: no distortion) as CameraInfo would carry it."""
    P = read_calib(calib)["P2"]
    return CameraModel(hw[1], hw[0], P[:, :3].copy(), np.zeros(5), np.eye(3), P, "plumb_bob", frame_id)


def read_labels(path: str | Path, classes: tuple[str, ...] = ("Car",)) -> tuple[np.ndarray, list[str]]:
    """(N, 7) boxes and class names of the label lines whose type is in ``classes``."""
    boxes, names = [], []
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if f and f[0] in classes:
            h, w, length, x, y, z, ry = (float(v) for v in f[8:15])
            boxes.append([x, y, z, h, w, length, ry])
            names.append(f[0])
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 7), names
