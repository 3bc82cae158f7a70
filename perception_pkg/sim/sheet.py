"""Contact sheet: frames with their ground truth drawn, for a person to check by eye.

Per frame, one row of three panels:
1. the image with modal 2D boxes (person orange, car cyan; dashed thin = amodal), projected 3D
   boxes (white wireframe, front face red) and skeletons (filled joint = v 2, hollow = v 1);
2. the image dimmed with the LiDAR returns projected into it, coloured by range (near red, far blue);
   returns of labelled objects drawn larger;
3. bird's-eye view of the LiDAR cloud (60 m ahead, +-30 m sideways) with the LiDAR-frame 3D boxes.
A last row shows one frame's weather degradations.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from perception_pkg.pose.coco17 import SKELETON
from perception_pkg.sim.render import Frame
from perception_pkg.sim.scene import Scene
from perception_pkg.sim.sensors import CameraSpec
from perception_pkg.sim.truth import Box3D

COLOURS = {"person": (255, 150, 0), "car": (0, 220, 255)}  # RGB
_BOX_EDGES = ((0, 1), (1, 3), (3, 2), (2, 0), (4, 5), (5, 7), (7, 6), (6, 4), (0, 4), (1, 5), (2, 6), (3, 7))
_FRONT = (4, 5, 7, 6)  # the +x (heading) face
_BEV_RANGE = (-5.0, 55.0, -30.0, 30.0)  # x min, x max, y min, y max (m, LiDAR frame)


def _draw_box3d(img: np.ndarray, box: Box3D, cam: CameraSpec) -> None:
    corners = box.corners()
    if np.any(corners[:, 2] <= 0.5):
        return  # partly behind the camera: a projected wireframe would be misleading
    uv = cam.project(corners)
    pts = np.round(uv * 4).astype(np.int32)  # 2 fractional bits for cv2's sub-pixel drawing
    for a, b in _BOX_EDGES:
        colour = (255, 60, 60) if a in _FRONT and b in _FRONT else (255, 255, 255)
        cv2.line(img, tuple(pts[a]), tuple(pts[b]), colour, 1, cv2.LINE_AA, shift=2)


def _dashed_rect(img: np.ndarray, box: np.ndarray, colour: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = (round(v) for v in box)
    for xa, ya, xb, yb in ((x0, y0, x1, y0), (x1, y0, x1, y1), (x1, y1, x0, y1), (x0, y1, x0, y0)):
        n = max(1, int(np.hypot(xb - xa, yb - ya) // 6))
        for i in range(0, n, 2):
            p = (round(xa + (xb - xa) * i / n), round(ya + (yb - ya) * i / n))
            q = (round(xa + (xb - xa) * (i + 1) / n), round(ya + (yb - ya) * (i + 1) / n))
            cv2.line(img, p, q, colour, 1)


def annotate(frame: Frame, scene: Scene, min_pixels: int = 20) -> np.ndarray:
    """Panel 1: image with boxes, 3D wireframes and skeletons."""
    cam = scene.rig.camera
    img = frame.image.copy()
    shown = [o for o in frame.objects if o.box2d is not None and o.visible_pixels >= min_pixels]
    for o in shown:
        _draw_box3d(img, o.box3d_camera, cam)
    for o in shown:
        colour = COLOURS[o.cls]
        if o.box2d_amodal is not None:
            _dashed_rect(img, np.clip(o.box2d_amodal, -1, [cam.width, cam.height] * 2), colour)
        x0, y0, x1, y1 = (round(v) for v in o.box2d)  # type: ignore[union-attr]
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, 2)
        if o.keypoints is not None:
            kp = o.keypoints
            for a, b in SKELETON:
                if kp[a, 2] > 0 and kp[b, 2] > 0:
                    pa = (round(kp[a, 0] * 4), round(kp[a, 1] * 4))
                    pb = (round(kp[b, 0] * 4), round(kp[b, 1] * 4))
                    cv2.line(img, pa, pb, (60, 255, 60), 1, cv2.LINE_AA, shift=2)
            for x, y, v in kp:
                if v > 0:
                    cv2.circle(img, (round(x), round(y)), 2, (255, 255, 0), -1 if v == 2 else 1)
    return img


def _range_colour(r: np.ndarray, far: float = 60.0) -> np.ndarray:
    hue = (np.clip(r / far, 0.0, 1.0) * 120).astype(np.uint8)  # OpenCV hue: 0 red .. 120 blue
    hsv = np.stack([hue, np.full_like(hue, 255), np.full_like(hue, 255)], axis=-1)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


def lidar_overlay(frame: Frame, scene: Scene) -> np.ndarray:
    """Panel 2: LiDAR returns projected into the dimmed image."""
    cam = scene.rig.camera
    img = (frame.image * 0.45).astype(np.uint8)
    xyz = frame.points[:, :3].astype(np.float64)
    pc = xyz @ scene.rig.T_camera_lidar[:3, :3].T + scene.rig.T_camera_lidar[:3, 3]
    front = pc[:, 2] > 0.5
    uv = cam.project(pc[front])
    col = np.floor(uv[:, 0] + 0.5).astype(int)
    row = np.floor(uv[:, 1] + 0.5).astype(int)
    inside = (col >= 0) & (col < cam.width - 1) & (row >= 0) & (row < cam.height - 1)
    colours = _range_colour(np.linalg.norm(xyz[front], axis=1))
    labelled = np.isin(frame.point_ids[front], [o.oid for o in frame.objects])
    col, row, colours, labelled = col[inside], row[inside], colours[inside], labelled[inside]
    img[row, col] = colours
    # labelled objects' returns as 2x2 dots so they stand out
    for dr, dc in ((0, 1), (1, 0), (1, 1)):
        img[row[labelled] + dr, col[labelled] + dc] = colours[labelled]
    return img


def bev(frame: Frame, size: int = 480) -> np.ndarray:
    """Panel 3: bird's-eye view (x up, y left) of the LiDAR cloud and LiDAR-frame 3D boxes."""
    x0, x1, _, y1 = _BEV_RANGE
    scale = size / (x1 - x0)
    img = np.zeros((size, size, 3), np.uint8)

    def to_px(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ((x1 - x) * scale).astype(int), ((y1 - y) * scale).astype(int)  # rows, cols

    p = frame.points
    r, c = to_px(p[:, 0], p[:, 1])
    keep = (r >= 0) & (r < size) & (c >= 0) & (c < size)
    shade = np.clip(60 + 195 * (p[keep, 2] + 1.7) / 3.0, 40, 255).astype(np.uint8)
    img[r[keep], c[keep]] = shade[:, None]
    for o in frame.objects:
        if o.num_lidar_points == 0:
            continue
        corners = o.box3d_lidar.corners()[[0, 2, 6, 4]]  # bottom face, in order around it
        rr, cc = to_px(corners[:, 0], corners[:, 1])
        poly = np.stack([cc, rr], axis=1).astype(np.int32)
        cv2.polylines(img, [poly], True, COLOURS[o.cls], 1, cv2.LINE_AA)
        head = o.box3d_lidar.centre + o.box3d_lidar.rotation[:, 0] * o.box3d_lidar.size[0] / 2
        hr, hc = to_px(
            np.array([o.box3d_lidar.centre[0], head[0]]), np.array([o.box3d_lidar.centre[1], head[1]])
        )
        cv2.line(img, (int(hc[0]), int(hr[0])), (int(hc[1]), int(hr[1])), COLOURS[o.cls], 1)
    er, ec = to_px(np.array([0.0]), np.array([0.0]))
    cv2.circle(img, (int(ec[0]), int(er[0])), 4, (255, 60, 60), -1)  # the ego LiDAR
    return img


def _label(img: np.ndarray, text: str) -> np.ndarray:
    """Caption on a dark band (an outline drawn with a thicker stroke does not line up with the
    thin text in OpenCV 5's font renderer)."""
    img = img.copy()
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    img[: th + base + 8, : tw + 12] //= 3
    cv2.putText(img, text, (6, th + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def contact_sheet(
    frames: Sequence[Frame], scene: Scene, degraded: dict[str, np.ndarray] | None = None
) -> np.ndarray:
    """The whole sheet as an RGB image."""
    rows = []
    for f in frames:
        h = f.image.shape[0]
        panel3 = cv2.resize(bev(f), (h, h), interpolation=cv2.INTER_NEAREST)
        n_people = sum(
            o.cls == "person" and o.box2d is not None and o.visible_pixels >= 20 for o in f.objects
        )
        rows.append(
            np.concatenate(
                [
                    _label(
                        annotate(f, scene),
                        f"seed {scene.seed} frame {f.index}  t={f.t:.1f}s  people {n_people}",
                    ),
                    _label(lidar_overlay(f, scene), f"LiDAR {len(f.points)} pts"),
                    _label(panel3, "BEV"),
                ],
                axis=1,
            )
        )
    width = rows[0].shape[1] if rows else 640
    if degraded:
        h, w = frames[0].image.shape[:2]
        k = len(degraded)
        tw = width // k
        th = round(h * tw / w)
        tiles = [
            _label(cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA), name)
            for name, img in degraded.items()
        ]
        strip = np.concatenate(tiles, axis=1)
        rows.append(np.pad(strip, ((0, 0), (0, width - strip.shape[1]), (0, 0))))
    return np.concatenate(rows, axis=0)


def write_contact_sheet(path: str | Path, frames: Sequence[Frame], scene: Scene, degraded=None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet = contact_sheet(frames, scene, degraded)
    cv2.imwrite(str(path), sheet[..., ::-1])
    return path
