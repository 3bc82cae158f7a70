"""The host-side hot path as it was before issue 17, kept as the "before" of the equality tests: the RTM3D
decoder's per-vertex-type grouping loop and full-map peak test, the integral decoder's whole-map 3x3 box
sum, the normaliser's transpose-then-scale arithmetic, the top-down crop maps, and the keyword-built
messages (Detection2D/3D arrays, PersonArray, markers). The run-time code must give the same values
(tests/test_decoders_*.py, tests/test_preprocess_*.py, tests/test_msgs_fast.py). No tests here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.decoders.base import sigmoid
from perception_pkg.decoders.detection.centernet import logit
from perception_pkg.decoders.detection.rtm3d import MIN_VERTEX_CONFIDENCE
from perception_pkg.decoders.types import Detections
from perception_pkg.geometry3d.box3d import boxes_to_keypoints
from perception_pkg.geometry3d.multibin import decode_multibin
from perception_pkg.msgs._common import pack_bytes, pack_floats
from perception_pkg.msgs.detections import kitti_to_bbox3d
from perception_pkg.msgs.factory import MessageFactory
from perception_pkg.pose.coco17 import NUM_KEYPOINTS, SKELETON
from perception_pkg.preprocess.affine import PIXEL_SHIFT
from perception_pkg.preprocess.normalize import to_layout
from perception_pkg.viz.detections import WIREFRAME_EDGES
from perception_pkg.viz.palette import class_colour

# --- decoders --------------------------------------------------------------------------------------------


def naive_max_pool3x3(x: NDArray) -> NDArray:
    """3x3 window maximum over the last two axes by shifted copies (outside the map counts as -inf)."""
    *lead, h, w = x.shape
    pad = np.full((*lead, h + 2, w + 2), -np.inf, dtype=x.dtype)
    pad[..., 1:-1, 1:-1] = x
    return np.max([pad[..., dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)], axis=0)


def heatmap_peaks(heat: NDArray, top_k: int, threshold: float) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Peaks as before: the whole map compared with its window maximum, then the threshold."""
    _, h, w = heat.shape
    flat = heat.reshape(-1)
    idx = np.flatnonzero((heat >= threshold) & (heat == naive_max_pool3x3(heat)))
    if idx.size > top_k:
        idx = idx[np.argpartition(-flat[idx], top_k - 1)[:top_k]]
    idx = idx[np.argsort(-flat[idx], kind="stable")]
    cls, rest = np.divmod(idx, h * w)
    y, x = np.divmod(rest, w)
    return cls, y, x, flat[idx]


def _centernet_peaks(dec: Any, heat: NDArray, size: NDArray, offset: NDArray | None) -> tuple:
    if dec.activation == "sigmoid":
        cls, y, x, raw = heatmap_peaks(heat, dec.top_k, logit(dec.threshold) - 1e-6)
        score = sigmoid(raw.astype(np.float64))
        keep = score >= dec.threshold
        cls, y, x, score = cls[keep], y[keep], x[keep], score[keep]
    else:
        cls, y, x, score = heatmap_peaks(heat, dec.top_k, dec.threshold)
        score = score.astype(np.float64)
    wh = size[:, y, x].T.astype(np.float64)
    if dec.size_unit == "output":
        wh = wh * dec.stride
    off = offset[:, y, x].T.astype(np.float64) if offset is not None else 0.0
    centre = (np.stack([x, y], axis=1) + off) * dec.stride
    boxes = np.concatenate([centre - wh / 2, centre + wh / 2], axis=1)
    assert dec.nms_iou is None, "the reference covers the shipped card (no NMS)"
    return cls, y, x, score, boxes


def rtm3d_decode(dec: Any, outputs: dict[str, NDArray]) -> list[Detections]:
    """``Rtm3dDecoder.__call__`` before: vertices snapped one vertex type at a time."""
    heat = dec.output(outputs, "heatmap", 4)
    get = {r: dec.output(outputs, r, 4) for r in dec.tensors if r != "heatmap"}
    return [_rtm3d_one(dec, heat[b], {r: v[b] for r, v in get.items()}) for b in range(heat.shape[0])]


def _rtm3d_one(dec: Any, heat: NDArray, o: dict[str, NDArray]) -> Detections:
    cls, y, x, score, boxes = _centernet_peaks(dec, heat, o["size"], o.get("offset"))
    n = len(score)
    s = dec.stride
    vheat = o["vertex_heatmap"]
    _, h, w = vheat.shape
    reg = o["vertex_offsets"][:, y, x].T.reshape(n, 9, 2).astype(np.float64)
    reg = reg + np.stack([x, y], axis=1)[:, None, :]
    kp = reg.copy()
    conf = np.full((n, 9), MIN_VERTEX_CONFIDENCE)
    if n:
        cut = logit(dec.vertex_threshold) - 1e-6
        vc, vy, vx, vlogit = heatmap_peaks(vheat, dec.vertex_top_k, cut)
        vpos = np.stack([vx, vy], axis=1).astype(np.float64)
        if "vertex_subpixel" in o:
            vpos = vpos + o["vertex_subpixel"][:, vy, vx].T
        vscore = sigmoid(vlogit.astype(np.float64))
        side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / s
        radius = dec.snap_radius * side + 1.0
        for j in range(9):
            sel = vc == j
            cx = np.clip(np.floor(reg[:, j, 0]).astype(int), 0, w - 1)
            cy = np.clip(np.floor(reg[:, j, 1]).astype(int), 0, h - 1)
            inside = (reg[:, j, 0] >= 0) & (reg[:, j, 0] < w) & (reg[:, j, 1] >= 0) & (reg[:, j, 1] < h)
            at = sigmoid(vheat[j, cy, cx].astype(np.float64))
            conf[:, j] = np.where(inside, np.maximum(at, MIN_VERTEX_CONFIDENCE), MIN_VERTEX_CONFIDENCE)
            if not sel.any():
                continue
            d = np.linalg.norm(reg[:, j, None, :] - vpos[None, sel], axis=-1)
            best = d.argmin(axis=1)
            near = d[np.arange(n), best] < radius
            kp[near, j] = vpos[sel][best[near]]
            conf[near, j] = vscore[sel][best[near]]
    keypoints = np.concatenate([kp * s, conf[..., None]], axis=-1)
    mean, std = dec.mean[cls], dec.std[cls]
    dims = mean * np.exp(o["dimensions"][:, y, x].T.astype(np.float64))
    extras = {
        "dimensions": dims,
        "dimension_std": std,
        "alpha": np.where(np.isfinite(mean[:, 0]), decode_multibin(o["orientation"][:, y, x].T), np.nan),
    }
    if "depth" in o:
        extras["depth"] = np.where(
            np.isfinite(mean[:, 0]), np.exp(o["depth"][0, y, x].astype(np.float64)), np.nan
        )
    return Detections(boxes, score, cls.astype(np.int64), keypoints, extras)


def box_mass_at_mode(p: NDArray[np.float64]) -> NDArray[np.float64]:
    """The integral decoder's score before: a zero-padded 3x3 box sum of the whole map, read at the mode."""
    n, k, h, w = p.shape
    pad = np.pad(p, ((0, 0), (0, 0), (1, 1), (1, 1)))
    box = sum(pad[..., dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3))
    mode = p.reshape(n, k, h * w).argmax(axis=-1)
    return np.take_along_axis(box.reshape(n, k, h * w), mode[..., None], axis=-1)[..., 0]


# --- preprocess ------------------------------------------------------------------------------------------


def normalize(norm: Any, images_bgr: NDArray) -> NDArray:
    """``Normalizer.__call__`` before for colour images: flip, transpose to the layout, then scale."""
    batch = images_bgr[None] if images_bgr.ndim == 3 else images_bgr
    px = batch[..., ::-1] if norm.color == "RGB" else batch
    tensor = to_layout(px, norm.layout)
    if norm._raw:
        return tensor.astype(norm.dtype, copy=False)
    out = tensor.astype(np.float32)
    shape = [1] * out.ndim
    shape[1 if norm.layout == "NCHW" else out.ndim - 1] = norm.channels
    out *= norm._mul.reshape(shape)
    out += norm._add.reshape(shape)
    return out.astype(norm.dtype, copy=False)


def crop_maps(inv_cv: NDArray, dst_hw: tuple[int, int]) -> tuple[NDArray, NDArray]:
    """``warp_crops``'s remap maps before: the full affine evaluated at every output pixel."""
    dh, dw = dst_hw
    jj = np.arange(dw, dtype=np.float64)[None, None, :]
    ii = np.arange(dh, dtype=np.float64)[None, :, None]
    m = inv_cv[:, :, :, None, None]
    map_x = (m[:, 0, 0] * jj + m[:, 0, 1] * ii + m[:, 0, 2]).astype(np.float32)
    map_y = (m[:, 1, 0] * jj + m[:, 1, 1] * ii + m[:, 1, 2]).astype(np.float32)
    return map_x, map_y


# --- messages --------------------------------------------------------------------------------------------


def _pose(types: MessageFactory, xyz: Any, q: Any = (0.0, 0.0, 0.0, 1.0)) -> Any:
    return types.Pose(
        position=types.Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2])),
        orientation=types.Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
    )


def _hypothesis(types: MessageFactory, label: str, score: float, pose: Any) -> Any:
    return types.ObjectHypothesisWithPose(
        hypothesis=types.ObjectHypothesis(class_id=label, score=float(score)),
        pose=types.PoseWithCovariance(
            pose=pose, covariance=pack_floats(types.PoseWithCovariance, np.zeros(36), fixed=True)
        ),
    )


def detection2d_array(result: Any, header: Any, types: MessageFactory) -> Any:
    dets = result.detections
    boxes = np.asarray(dets.boxes, dtype=np.float64)
    centres = ((boxes[:, :2] + boxes[:, 2:]) / 2 - PIXEL_SHIFT).tolist()
    sizes = (boxes[:, 2:] - boxes[:, :2]).tolist()
    scores = np.asarray(dets.scores, dtype=np.float64).tolist()
    out = []
    for i, label in enumerate(result.labels()):
        (cx, cy), (sx, sy) = centres[i], sizes[i]
        bbox = types.BoundingBox2D(
            center=types.Pose2D(position=types.Point2D(x=cx, y=cy), theta=0.0), size_x=sx, size_y=sy
        )
        hyp = _hypothesis(types, label, scores[i], _pose(types, (cx, cy, 0.0)))
        out.append(types.Detection2D(header=header, results=[hyp], bbox=bbox, id=str(i)))
    return types.Detection2DArray(header=header, detections=out)


def detection3d_array(result: Any, header: Any, types: MessageFactory) -> Any:
    if result.boxes3d is None:
        return types.Detection3DArray(header=header, detections=[])
    boxes3d = np.asarray(result.boxes3d, dtype=np.float64).reshape(-1, 7)
    rows = np.flatnonzero(np.all(np.isfinite(boxes3d), axis=1))
    centres, quats, sizes = kitti_to_bbox3d(boxes3d[rows])
    labels = result.labels()
    scores = getattr(result, "scores3d", None)
    scores = result.detections.scores if scores is None else scores
    out = []
    for j, r in enumerate(rows.tolist()):
        pose = _pose(types, centres[j], quats[j])
        l_, w_, h_ = sizes[j].tolist()
        bbox = types.BoundingBox3D(center=pose, size=types.Vector3(x=l_, y=w_, z=h_))
        hyp = _hypothesis(types, labels[r], scores[r], _pose(types, centres[j], quats[j]))
        out.append(types.Detection3D(header=header, results=[hyp], bbox=bbox, id=str(r)))
    return types.Detection3DArray(header=header, detections=out)


def people_to_person_array(
    header: Any, f: MessageFactory, boxes: NDArray, person_scores: NDArray, keypoints: NDArray,
    keypoint_scores: NDArray, sigmas: NDArray | None = None,
) -> Any:  # fmt: skip
    n = len(boxes)
    sig = np.full((n, 17), np.nan) if sigmas is None else sigmas
    table = np.concatenate([keypoints - PIXEL_SHIFT, keypoint_scores[..., None], sig[..., None]], -1).tolist()
    kp_cls = f.cls("perception_msgs/msg/Keypoint2D")
    people = []
    for i in range(n):
        x0, y0, x1, y1 = (float(v) for v in boxes[i])
        bbox = f(
            "vision_msgs/msg/BoundingBox2D",
            center=f(
                "vision_msgs/msg/Pose2D",
                position=f(
                    "vision_msgs/msg/Point2D", x=(x0 + x1) / 2 - PIXEL_SHIFT, y=(y0 + y1) / 2 - PIXEL_SHIFT
                ),
                theta=0.0,
            ),
            size_x=x1 - x0,
            size_y=y1 - y0,
        )
        kps = [kp_cls(x=x, y=y, score=s, sigma=g) for x, y, s, g in table[i]]
        people.append(
            f("perception_msgs/msg/Person", bbox=bbox, score=float(person_scores[i]), keypoints=kps)
        )
    return f("perception_msgs/msg/PersonArray", header=header, people=people)


def _marker(
    types: MessageFactory, header: Any, ns: str, mid: int, action: int, *, kind: int = 0,
    points: list | None = None, scale: float = 0.0, rgba: tuple = (0.0, 0.0, 0.0, 0.0),
    lifetime_s: float = 0.0, text: str = "", pose: Any = None,
) -> Any:  # fmt: skip
    sec, nanosec = divmod(round(lifetime_s * 1e9), 1_000_000_000)
    empty = np.zeros(0, dtype=np.uint8)
    return types.Marker(
        header=header, ns=ns, id=int(mid), type=int(kind), action=int(action),
        pose=pose if pose is not None else _pose(types, (0.0, 0.0, 0.0)),
        scale=types.Vector3(x=float(scale), y=float(scale), z=float(scale)),
        color=types.ColorRGBA(r=rgba[0], g=rgba[1], b=rgba[2], a=rgba[3]),
        lifetime=types.Duration(sec=sec, nanosec=nanosec), frame_locked=False, points=points or [],
        colors=[], texture_resource="",
        texture=types.CompressedImage(
            header=types.Header(stamp=types.Time(sec=0, nanosec=0), frame_id=""), format="",
            data=pack_bytes(types.CompressedImage, empty),
        ),
        uv_coordinates=[], text=text, mesh_resource="",
        mesh_file=types.MeshFile(filename="", data=pack_bytes(types.MeshFile, empty)),
        mesh_use_embedded_materials=False,
    )  # fmt: skip


def detection_markers(
    result: Any, header: Any, types: MessageFactory, *, lifetime_s: float = 0.5, line_width: float = 0.05,
    text_height: float = 0.4, previous_count: int = 0,
) -> Any:  # fmt: skip
    marker_cls = types.Marker
    add, delete = int(marker_cls.ADD), int(marker_cls.DELETE)
    markers = []
    n = len(result)
    if result.boxes3d is not None and n:
        boxes3d = np.asarray(result.boxes3d, dtype=np.float64).reshape(-1, 7)
        rows = np.flatnonzero(np.all(np.isfinite(boxes3d), axis=1))
        corners = boxes_to_keypoints(boxes3d[rows])[:, :8]
        segments = corners[:, WIREFRAME_EDGES.reshape(-1)].tolist()
        tops = boxes3d[rows, :3].copy()
        tops[:, 1] -= boxes3d[rows, 3] + text_height
        labels = result.labels()
        scores = result.detections.scores
        cids = result.detections.class_ids
        for j, r in enumerate(rows.tolist()):
            rgba = (*class_colour(int(cids[r])), 1.0)
            pts = [types.Point(x=p[0], y=p[1], z=p[2]) for p in segments[j]]
            markers.append(
                _marker(types, header, "detection_boxes", r, add, kind=int(marker_cls.LINE_LIST),
                        points=pts, scale=line_width, rgba=rgba, lifetime_s=lifetime_s)
            )  # fmt: skip
            markers.append(
                _marker(types, header, "detection_labels", r, add, kind=int(marker_cls.TEXT_VIEW_FACING),
                        scale=text_height, rgba=rgba, lifetime_s=lifetime_s,
                        text=f"{labels[r]} {scores[r]:.2f}", pose=_pose(types, tops[j]))
            )  # fmt: skip
        stale = np.setdiff1d(np.arange(n), rows).tolist()
    else:
        stale = list(range(n))
    stale += list(range(n, int(previous_count)))
    for r in stale:
        for ns in ("detection_boxes", "detection_labels"):
            markers.append(_marker(types, header, ns, r, delete))
    return types.MarkerArray(markers=markers)


def skeleton_markers(
    header: Any, f: MessageFactory, keypoints: NDArray, scores: NDArray, *, threshold: float = 0.0,
    pixel_size: float = 1e-3, ns: str = "pose",
) -> Any:  # fmt: skip
    pairs = np.asarray(SKELETON, dtype=np.intp)
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2) - PIXEL_SHIFT
    ok = (np.asarray(scores).reshape(kp.shape[:2]) >= threshold) & np.isfinite(kp).all(-1)
    limb_ok = ok[:, pairs[:, 0]] & ok[:, pairs[:, 1]]
    ends = kp[:, pairs][limb_ok].reshape(-1, 2) * pixel_size
    joints = kp[ok] * pixel_size
    point_cls = f.cls("geometry_msgs/msg/Point")

    def marker(mid: int, kind: int, xy: NDArray, width: float, rgba: tuple[float, ...]) -> Any:
        pts = [point_cls(x=x, y=y, z=0.0) for x, y in xy.tolist()]
        return f(
            "visualization_msgs/msg/Marker", header=header, ns=ns, id=mid, type=kind,
            action=0 if pts else 2,
            pose=f("geometry_msgs/msg/Pose", orientation=f("geometry_msgs/msg/Quaternion", w=1.0)),
            scale=f("geometry_msgs/msg/Vector3", x=width, y=width, z=width),
            color=f("std_msgs/msg/ColorRGBA", r=rgba[0], g=rgba[1], b=rgba[2], a=rgba[3]), points=pts,
        )  # fmt: skip

    w = 3.0 * pixel_size
    return f(
        "visualization_msgs/msg/MarkerArray",
        markers=[
            marker(0, 5, ends, w, (0.1, 0.9, 0.2, 1.0)),
            marker(1, 8, joints, 2 * w, (1.0, 0.3, 0.1, 1.0)),
        ],
    )
