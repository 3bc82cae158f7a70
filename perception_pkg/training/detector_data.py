"""Training data for the shipped detector: simulator frames resized to the network input, with labels.

Coordinates follow the stack's continuous pixel frame (pixel j spans [j, j + 1)); the simulator labels
pixel-centre coordinates (pixel j centred on j), hence the +0.5 on the way in. Frames are rendered in
worker processes and cached in one ``.npz`` (images uint8 + one row per object), so a second training
run with the same seeds skips rendering.

Which objects teach what (``label_object``): an object becomes a positive when enough of it is seen
(``min_visible`` pixels, ``min_height`` px tall, both in the 640x480 source); objects below that are
*ignore* regions (no positive, no negative inside their box) because a detector cannot be right or wrong
about a dozen pixels of a car behind another. 3D targets need the whole box in front of the camera.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from perception_pkg.geometry3d.box3d import box3d_keypoints, project_points
from perception_pkg.geometry3d.multibin import rotation_y_to_alpha
from perception_pkg.pose.coco17 import flip_permutation

log = logging.getLogger(__name__)

CLASSES = ("person", "car")
MIN_VISIBLE = 150
MIN_HEIGHT = 20.0
# Object fields stored per row, concatenated over all frames; "frame" says which image a row belongs to.
OBJECT_FIELDS = ("cls", "positive", "box", "has3d", "loc", "dims", "ry", "kps")
_FIELDS = ("frame", *OBJECT_FIELDS)


@dataclass(frozen=True)
class RenderSpec:
    """Which frames to render: ``frames_per_scene`` frames ``step`` apart from each scene seed."""

    seeds: tuple[int, ...]
    frames_per_scene: int = 10
    step: int = 3
    net_hw: tuple[int, int] = (288, 384)

    def key(self) -> str:
        s = self.seeds
        return (
            f"s{s[0]}-{s[-1]}n{len(s)}_f{self.frames_per_scene}x{self.step}_{self.net_hw[1]}x{self.net_hw[0]}"
        )


def _label_frame(frame, scale: float) -> dict[str, NDArray]:
    rows: dict[str, list] = {k: [] for k in OBJECT_FIELDS}
    for o in frame.objects:
        if o.cls not in CLASSES or o.box2d is None:
            continue
        box = (np.asarray(o.box2d, dtype=np.float64) + 0.5) * scale
        height = o.box2d[3] - o.box2d[1]
        positive = o.visible_pixels >= MIN_VISIBLE and height >= MIN_HEIGHT
        kitti = o.box3d_camera.kitti()
        dims = np.array(kitti["dimensions"])
        loc = np.array(kitti["location"])
        ry = float(kitti["rotation_y"])
        verts_cam = box3d_keypoints(loc, dims, ry)
        has3d = bool(np.all(verts_cam[:, 2] > 0.5))
        kps = np.zeros((17, 3))
        if o.keypoints is not None:
            kps = np.asarray(o.keypoints, dtype=np.float64).copy()
            kps[:, :2] = (kps[:, :2] + 0.5) * scale
        rows["cls"].append(CLASSES.index(o.cls))
        rows["positive"].append(positive)
        rows["box"].append(box)
        rows["has3d"].append(has3d)
        rows["loc"].append(loc)
        rows["dims"].append(dims)
        rows["ry"].append(ry)
        rows["kps"].append(kps)
    n = len(rows["cls"])
    shapes = {"box": (0, 4), "loc": (0, 3), "dims": (0, 3), "kps": (0, 17, 3)}
    return {k: np.asarray(v) if n else np.zeros(shapes.get(k, (0,))) for k, v in rows.items()}


def _render_scene(
    args: tuple[int, int, int, tuple[int, int]],
) -> tuple[NDArray, list[dict[str, NDArray]], NDArray]:
    seed, count, step, net_hw = args
    cv2.setNumThreads(1)
    from perception_pkg.sim import Renderer, SceneConfig, generate_scene

    scene = generate_scene(seed=seed, config=SceneConfig(frames=count * step))
    renderer = Renderer(scene)
    cam = scene.config.rig.camera
    scale = net_hw[1] / cam.width
    images, labels = [], []
    for i in range(count):
        f = renderer.render(i * step, shadows=True)
        images.append(cv2.resize(f.image, (net_hw[1], net_hw[0]), interpolation=cv2.INTER_AREA))
        labels.append(_label_frame(f, scale))
    return np.stack(images), labels, cam.K


CACHE_BLOCK_SCENES = 240


def render_dataset(spec: RenderSpec, cache_dir: Path, workers: int = 2) -> dict[str, NDArray]:
    """Render (or load from ``cache_dir``) the frames of ``spec``: images (N, H, W, 3) RGB and objects.

    Cached in blocks of ``CACHE_BLOCK_SCENES`` scenes, so that training on more scenes renders only the
    new ones.
    """
    blocks = [
        replace(spec, seeds=spec.seeds[i : i + CACHE_BLOCK_SCENES])
        for i in range(0, len(spec.seeds), CACHE_BLOCK_SCENES)
    ]
    if len(blocks) == 1:
        return _render_block(spec, cache_dir, workers)
    parts = [_render_block(b, cache_dir, workers) for b in blocks]
    # object rows point at their frame: shift each block's indices past the frames before it
    first = np.cumsum([0] + [len(part["images"]) for part in parts[:-1]])
    out = {k: np.concatenate([part[k] for part in parts]) for k in (*OBJECT_FIELDS, "images")}
    out["frame"] = np.concatenate([part["frame"] + f for part, f in zip(parts, first, strict=True)])
    return {**out, "K": parts[0]["K"], "scale": parts[0]["scale"]}


def _render_block(spec: RenderSpec, cache_dir: Path, workers: int) -> dict[str, NDArray]:
    path = Path(cache_dir) / f"detector_{spec.key()}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    t0 = time.perf_counter()
    jobs = [(s, spec.frames_per_scene, spec.step, spec.net_hw) for s in spec.seeds]
    ctx = mp.get_context("spawn")  # open3d and torch do not survive fork reliably
    with ctx.Pool(workers) as pool:
        results = pool.map(_render_scene, jobs, chunksize=1)
    images = np.concatenate([r[0] for r in results])
    K = results[0][2]
    objs: dict[str, list] = {k: [] for k in _FIELDS}
    frame = 0
    for _, labels, _ in results:
        for lab in labels:
            objs["frame"].append(np.full(len(lab["cls"]), frame))
            for k in OBJECT_FIELDS:
                objs[k].append(lab[k])
            frame += 1
    data = {k: np.concatenate(v) for k, v in objs.items()}
    data["images"] = images
    data["K"] = K
    data["scale"] = np.array(spec.net_hw[1] / 640.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **data)
    log.info("rendered %d frames from %d scenes in %.0f s -> %s", len(images), len(spec.seeds),
             time.perf_counter() - t0, path)  # fmt: skip
    return data


# ----------------------------------------------------------------------------------------- targets


def gaussian_radius(h: NDArray, w: NDArray, min_overlap: float = 0.7) -> NDArray:
    """CenterNet's radius: the largest corner shift that keeps IoU >= min_overlap (three cases, min)."""
    a1, b1 = 1.0, h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2, c2 = 4.0, 2 * (h + w), (1 - min_overlap) * w * h
    r2 = (b2 + np.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (h + w), (min_overlap - 1) * w * h
    r3 = (b3 + np.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return np.minimum(np.minimum(r1, r2), r3)


def draw_gaussian(heat: NDArray, cx: int, cy: int, radius: int) -> None:
    """Max-splat a Gaussian (sigma = diameter / 6, as CenterNet) centred on cell (cx, cy), in place."""
    h, w = heat.shape
    d = 2 * radius + 1
    sigma = d / 6.0
    ax = np.arange(-radius, radius + 1)
    g = np.exp(-(ax[None, :] ** 2 + ax[:, None] ** 2) / (2 * sigma**2))
    x0, x1 = max(0, cx - radius), min(w, cx + radius + 1)
    y0, y1 = max(0, cy - radius), min(h, cy + radius + 1)
    if x0 >= x1 or y0 >= y1:
        return
    gs = g[y0 - cy + radius : y1 - cy + radius, x0 - cx + radius : x1 - cx + radius]
    np.maximum(heat[y0:y1, x0:x1], gs, out=heat[y0:y1, x0:x1])


@dataclass
class TargetConfig:
    stride: int = 4
    max_objects: int = 48
    dim_mean: NDArray | None = None  # (C, 3) class mean (h, w, l)


def build_targets(
    objs: dict[str, NDArray], K: NDArray, scale: float, net_hw: tuple[int, int], flip: bool, cfg: TargetConfig
) -> dict[str, NDArray]:
    """Dense and sparse targets of one image (its object rows), optionally horizontally flipped.

    A loop over objects (tens per image), never over pixels.
    """
    H, W = net_hw[0] // cfg.stride, net_hw[1] // cfg.stride
    C, M = len(CLASSES), cfg.max_objects
    s = cfg.stride
    t = {
        "hm": np.zeros((C, H, W), np.float32), "hm_weight": np.ones((C, H, W), np.float32),
        "kp_hm": np.zeros((9, H, W), np.float32),
        "ind": np.zeros(M, np.int64), "mask": np.zeros(M, np.float32),
        "wh": np.zeros((M, 2), np.float32), "reg": np.zeros((M, 2), np.float32),
        "mask3d": np.zeros(M, np.float32), "kp_off": np.zeros((M, 18), np.float32),
        "vind": np.zeros((M, 9), np.int64), "vmask": np.zeros((M, 9), np.float32),
        "vreg": np.zeros((M, 9, 2), np.float32),
        "dim": np.zeros((M, 3), np.float32), "alpha": np.zeros(M, np.float32), "dep": np.zeros(M, np.float32),
        "pose_mask": np.zeros(M, np.float32), "pose_kp": np.zeros((M, 17, 2), np.float32),
        "pose_vis": np.zeros((M, 17), np.float32),
    }  # fmt: skip
    n = len(objs["cls"])
    if n == 0:
        return t
    Wn = float(net_hw[1])
    box = objs["box"].copy()
    loc, dims, ry = objs["loc"].copy(), objs["dims"], objs["ry"].copy()
    kps = objs["kps"].copy()
    if flip:
        box[:, [0, 2]] = Wn - box[:, [2, 0]]
        loc[:, 0] = -loc[:, 0]  # the camera's cx = (W - 1) / 2 makes the mirror image exact
        ry = (np.pi - ry + np.pi) % (2 * np.pi) - np.pi
        kps = kps[:, flip_permutation()]
        kps[:, :, 0] = np.where(kps[:, :, 2] > 0, Wn - kps[:, :, 0], 0.0)
    P = np.hstack([K, np.zeros((3, 1))])
    order = np.argsort(-(box[:, 3] - box[:, 1]) * (box[:, 2] - box[:, 0]))  # big first: small ones win ties
    k = 0
    for i in order[::-1]:
        c = int(objs["cls"][i])
        b = box[i] / s
        bw, bh = b[2] - b[0], b[3] - b[1]
        if not objs["positive"][i]:
            x0, y0 = int(np.floor(max(b[0], 0))), int(np.floor(max(b[1], 0)))
            x1, y1 = int(np.ceil(min(b[2], W))), int(np.ceil(min(b[3], H)))
            t["hm_weight"][c, y0:y1, x0:x1] = 0.0
            continue
        if k >= M or bw <= 0 or bh <= 0:
            continue
        ct = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
        ci = np.clip(np.floor(ct).astype(int), 0, [W - 1, H - 1])
        r = max(0, int(gaussian_radius(np.array(bh), np.array(bw))))
        draw_gaussian(t["hm"][c], ci[0], ci[1], r)
        t["ind"][k] = ci[1] * W + ci[0]
        t["mask"][k] = 1
        t["wh"][k] = (bw, bh)
        t["reg"][k] = ct - ci
        if objs["has3d"][i]:
            verts = project_points(P, box3d_keypoints(loc[i], dims[i], ry[i]))  # pixel-centre, source px
            v = (verts + 0.5) * scale / s
            t["mask3d"][k] = 1
            t["kp_off"][k] = (v - ci).reshape(-1)
            inside = (v[:, 0] >= 0) & (v[:, 0] < W) & (v[:, 1] >= 0) & (v[:, 1] < H)
            vi = np.floor(v).astype(int)
            for j in np.flatnonzero(inside):
                draw_gaussian(t["kp_hm"][j], vi[j, 0], vi[j, 1], r)
            vi = np.clip(vi, 0, [W - 1, H - 1])
            t["vind"][k] = vi[:, 1] * W + vi[:, 0]
            t["vmask"][k] = inside
            t["vreg"][k] = v - vi
            mean = cfg.dim_mean[c] if cfg.dim_mean is not None else np.ones(3)
            t["dim"][k] = np.log(dims[i] / mean)
            centre = loc[i] - np.array([0.0, dims[i][0] / 2, 0.0])
            t["alpha"][k] = rotation_y_to_alpha(ry[i], centre[0], centre[2])
            t["dep"][k] = np.log(centre[2])
        if c == 0:
            vis = kps[i, :, 2] > 0
            if vis.sum() >= 3:
                t["pose_mask"][k] = 1
                t["pose_vis"][k] = vis
                t["pose_kp"][k] = np.where(vis[:, None], kps[i, :, :2] / s - ci, 0.0)
        k += 1
    return t
