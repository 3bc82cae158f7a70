"""Frames to evaluate: images, camera and ground truth from a ``perception sim`` dataset folder, a folder
of images with COCO ground truth, or a recording (rosbag2, ROS 1 bag).

- a dataset folder written by ``perception sim`` (``dataset.json``, ``annotations/detection.json``,
  ``images/<subset>/*.png``): :func:`load_dataset`;
- a rosbag2 with ``/camera/image_raw``, ``/camera/camera_info`` and the ``/ground_truth/detections_2d``
  / ``_3d`` topics (what ``perception sim`` writes), optionally carrying the detections already (a
  replay output bag): :func:`read_bag` (ROS 1 bags too, through ``datasets.recordings``);
- a folder of images with a COCO instances json (``images`` + ``annotations`` with ``bbox``): the
  ground truth of real photographs, :func:`load_coco_folder`.

Recordings are read through :func:`perception_pkg.datasets.recordings.open_recording`; the messages
of one frame are grouped by header stamp (:func:`messages_by_stamp`, shared with the pose
evaluation), as the simulator and the replay write them. A message that does not deserialise is
skipped, counted and logged.

Box conventions: 2D boxes are xyxy in continuous pixel coordinates, pixel i spanning [i, i + 1]
(COCO's, and the dataset json's). Every Detection2D box (ground truth and detections alike) uses ROS's
pixel-centre convention (pixel i centred on i), which :func:`detections2d_from_msg` maps to the
stack's. 3D boxes are KITTI camera-frame ``[x, y, z, h, w, l, rotation_y]``, bottom centre.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from perception_pkg.evaluation.detect import GroundTruth, Predictions

if TYPE_CHECKING:
    from perception_pkg.bag import BagReader

TOPIC_IMAGE = "/camera/image_raw"
TOPIC_INFO = "/camera/camera_info"
TOPIC_GT2D = "/ground_truth/detections_2d"
TOPIC_GT3D = "/ground_truth/detections_3d"


def is_bag(path: Path) -> bool:
    """A rosbag2 folder (metadata.yaml), one of its storage files, or a ROS 1 bag."""
    return (path / "metadata.yaml").is_file() or path.suffix in (".mcap", ".db3", ".bag")


def find_coco_json(folder: Path) -> Path | None:
    """The first ``*.json`` of a folder that holds COCO instances (``images`` and ``annotations`` with
    ``bbox``; a keypoints file qualifies, its boxes are instances too), or None."""
    for path in sorted(Path(folder).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (
            isinstance(data, dict)
            and isinstance(data.get("images"), list)
            and isinstance(data.get("annotations"), list)
            and all(isinstance(a, dict) and "bbox" in a for a in data["annotations"][:5])
            and data.get("categories")
        ):
            return path
    return None


def load_coco_folder(
    folder: str | Path, coco_json: str | Path | None = None, calib: str | Path | None = None
) -> DatasetFrames:
    """Real images and their COCO instances ground truth. Boxes are COCO's ``[x, y, w, h]`` (the stack's
    pixel convention). Crowd regions (``iscrowd``) are kept as ground truth with no visible pixels, so
    the evaluation's visibility filter ignores them and a detection on a crowd is neither a hit nor a
    false positive, as COCO's own crowd rule intends. ``calib``: a KITTI calib file for every image."""
    folder = Path(folder)
    path = Path(coco_json) if coco_json else find_coco_json(folder)
    if path is None:
        raise FileNotFoundError(f"{folder}: no COCO instances json (images + annotations with bbox)")
    coco = json.loads(path.read_text())
    cats = sorted(coco["categories"], key=lambda c: c["id"])
    cat_name = {c["id"]: c["name"] for c in cats}
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    images, gts, keys = [], [], []
    for img in sorted(coco["images"], key=lambda i: i["id"]):
        name = Path(img["file_name"]).name
        image_path = folder / name
        if not image_path.is_file():
            continue  # a json for a larger set than this folder holds: score the images that are here
        anns = [a for a in by_image.get(img["id"], []) if a["category_id"] in cat_name]
        xywh = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
        visible = [
            0.0 if a.get("iscrowd") else float(a.get("area", xywh[i, 2] * xywh[i, 3]))
            for i, a in enumerate(anns)
        ]
        gts.append(
            GroundTruth(
                boxes=np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]],
                classes=np.array([cat_name[a["category_id"]] for a in anns], dtype=str),
                visible_pixels=np.array(visible, dtype=np.float64),
                boxes3d=np.full((len(anns), 7), np.nan),
                truncation=np.zeros(len(anns)),
            )
        )
        images.append(image_path)
        keys.append(name)
    if not images:
        raise FileNotFoundError(f"{folder}: none of the images {path.name} lists is in the folder")
    camera = None
    if calib is not None:
        import cv2

        from perception_pkg.datasets import kitti

        h, w = cv2.imread(str(images[0]), cv2.IMREAD_COLOR).shape[:2]
        camera = kitti.camera_model(calib, (h, w))
    return DatasetFrames(folder, images, gts, [c["name"] for c in cats], camera, "coco", keys)


# --------------------------------------------------------------------------------------------------
# dataset folders


def camera_from_dataset(manifest: dict[str, Any]) -> Any:
    """The dataset's camera as a CameraModel: the simulator has no distortion, so P = K [I | 0]."""
    from perception_pkg.geometry3d.camera import CameraModel

    cam = manifest["camera"]
    K = np.asarray(cam["K"], dtype=np.float64).reshape(3, 3)
    return CameraModel(
        width=int(cam["width"]),
        height=int(cam["height"]),
        K=K,
        D=np.zeros(5),
        R=np.eye(3),
        P=np.hstack([K, np.zeros((3, 1))]),
        distortion_model="plumb_bob",
        frame_id=str(cam.get("frame_id", "")),
    )


@dataclass
class DatasetFrames:
    """A dataset folder's frames: image paths and ground truth, the camera and the class names."""

    root: Path
    images: list[Path]
    gts: list[GroundTruth]
    class_names: list[str]
    camera: Any
    subset: str = "clean"
    keys: list[str] = field(default_factory=list)


def _truncation(anns: list[dict[str, Any]], width: Any, height: Any) -> NDArray[np.float64]:
    """KITTI truncation per annotation: 1 - (amodal box clipped to the image) / amodal box area."""
    out = np.full(len(anns), np.nan)
    if not width or not height:
        return out
    for i, a in enumerate(anns):
        box = a.get("amodal_bbox")
        if not box or box[2] <= 0 or box[3] <= 0:
            continue
        x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
        x1, y1 = min(box[0] + box[2], float(width)), min(box[1] + box[3], float(height))
        inside = max(x1 - x0, 0.0) * max(y1 - y0, 0.0)
        out[i] = 1.0 - inside / (box[2] * box[3])
    return out


def load_dataset(root: str | Path, subset: str = "clean") -> DatasetFrames:
    """Ground truth of a ``perception sim`` dataset; ``subset`` picks ``images/<subset>`` (``clean``,
    ``fog_s3``, ...; degraded copies share the clean frame's annotations)."""
    root = Path(root)
    manifest = json.loads((root / "dataset.json").read_text())
    coco = json.loads((root / "annotations" / "detection.json").read_text())
    cat_name = {c["id"]: c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])}
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    images, gts, keys = [], [], []
    for img in sorted(coco["images"], key=lambda i: i["id"]):
        name = Path(img["file_name"]).name
        path = root / "images" / subset / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no image {name!r} in subset {subset!r}")
        anns = by_image.get(img["id"], [])
        xywh = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
        boxes = np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]]
        boxes3d = np.full((len(anns), 7), np.nan)
        for i, a in enumerate(anns):
            b = a.get("box3d_camera")
            if b:
                boxes3d[i] = [*b["location"], *b["dimensions"], b["rotation_y"]]
        gts.append(
            GroundTruth(
                boxes=boxes,
                classes=np.array([cat_name[a["category_id"]] for a in anns], dtype=str),
                visible_pixels=np.array([a.get("area", np.nan) for a in anns], dtype=np.float64),
                boxes3d=boxes3d,
                truncation=_truncation(anns, img.get("width"), img.get("height")),
            )
        )
        images.append(path)
        keys.append(f"images/{subset}/{name}")
    return DatasetFrames(
        root, images, gts, list(cat_name.values()), camera_from_dataset(manifest), subset, keys
    )


# --------------------------------------------------------------------------------------------------
# bags


def messages_by_stamp(
    reader: BagReader, topics: Collection[str], latest: Collection[str] = ()
) -> Iterator[tuple[int, dict[str, Any], dict[str, Any]]]:
    """(header stamp, topic -> message, topic -> newest message of ``latest``) for each stamp that has a
    message on every one of ``topics``, as it becomes complete and once every ``latest`` topic (e.g.
    camera_info, which need not share the frame's stamp) has been seen. Stamps that never complete
    (the bag was cut) are left out, not guessed."""
    from perception_pkg.msgs import stamp_to_ns

    needed, newest = set(topics), set(latest)
    pending: dict[int, dict[str, Any]] = {}
    last: dict[str, Any] = {}
    for m, msg in reader.decoded(needed | newest):
        if m.topic in newest:
            last[m.topic] = msg
            continue
        stamp = stamp_to_ns(msg.header)
        slot = pending.setdefault(stamp, {})
        slot[m.topic] = msg
        if needed <= slot.keys() and newest <= last.keys():
            yield stamp, pending.pop(stamp), dict(last)


def bgr_image(msg: Any) -> NDArray[np.uint8]:
    """HxWx3 BGR of an Image or a CompressedImage (which has ``format`` and no ``encoding``)."""
    from perception_pkg.msgs import compressed_to_array, image_to_bgr

    return image_to_bgr(msg) if hasattr(msg, "encoding") else compressed_to_array(msg, color="bgr")


def detections2d_from_msg(msg: Any, shift: float = 0.0) -> tuple[NDArray, NDArray, NDArray, list[str]]:
    """(boxes xyxy (N, 4) + shift, scores, class names, ids) of a Detection2DArray."""
    from perception_pkg.msgs.detections import detection2d_array_to_xyxy

    boxes, scores, labels = detection2d_array_to_xyxy(msg)
    ids = [str(d.id) for d in msg.detections]
    return boxes + shift, scores, np.array(labels, dtype=str).reshape(-1), ids


def detections3d_from_msg(msg: Any) -> tuple[NDArray, NDArray, NDArray, list[str]]:
    """(KITTI boxes (N, 7), scores, class names, ids) of a camera-frame Detection3DArray (the box
    convention the simulator's ground truth and the detection node share)."""
    from perception_pkg.msgs.detections import detection3d_array_to_kitti

    boxes, scores, labels, ids = detection3d_array_to_kitti(msg)
    return boxes, scores, np.array(labels, dtype=str).reshape(-1), ids


@dataclass
class BagFrame:
    stamp_ns: int
    image_bgr: NDArray[np.uint8] | None
    camera: Any
    gt: GroundTruth
    pred: Predictions | None


def read_bag(
    path: str | Path,
    image_topic: str | None = TOPIC_IMAGE,
    info_topic: str = TOPIC_INFO,
    gt2d_topic: str = TOPIC_GT2D,
    gt3d_topic: str | None = TOPIC_GT3D,
    det_topic: str | None = None,
    det3d_topic: str | None = None,
) -> Iterator[BagFrame]:
    """Frames of a rosbag2, one per ground-truth stamp, in the order they become complete.

    With ``det_topic`` (and ``det3d_topic``) the detections come from the bag (``pred`` set) and
    ``image_topic`` may be None; else ``image_bgr`` is decoded for a detector to run on.
    """
    from perception_pkg.datasets.recordings import open_recording
    from perception_pkg.msgs import camera_info_to_model

    needed = {t for t in (image_topic, gt2d_topic, gt3d_topic, det_topic, det3d_topic) if t}
    with open_recording(path) as reader:
        reader.require(needed)
        try:
            for stamp, slot, last in messages_by_stamp(reader, needed, [info_topic]):
                camera = camera_info_to_model(last[info_topic])
                yield _bag_frame(
                    slot, stamp, camera, image_topic, gt2d_topic, gt3d_topic, det_topic, det3d_topic
                )
        finally:
            reader.warn_malformed()


def _bag_frame(
    slot: dict[str, Any],
    stamp: int,
    camera: Any,
    image_topic: str | None,
    gt2d_topic: str,
    gt3d_topic: str | None,
    det_topic: str | None,
    det3d_topic: str | None,
) -> BagFrame:
    # ground-truth Detection2D boxes use ROS's pixel-centre convention like every Detection2D; the reader
    # maps them to the stack's (COCO's) convention
    boxes, _, classes, ids = detections2d_from_msg(slot[gt2d_topic])
    boxes3d = None
    if gt3d_topic:
        b3, _, _, ids3 = detections3d_from_msg(slot[gt3d_topic])
        row = {i: k for k, i in enumerate(ids3)}
        boxes3d = np.full((len(ids), 7), np.nan)
        for k, i in enumerate(ids):
            if i in row:
                boxes3d[k] = b3[row[i]]
    gt = GroundTruth(boxes, classes, np.full(len(ids), np.nan), boxes3d)
    pred = None
    if det_topic:
        db, ds, dc, _ = detections2d_from_msg(slot[det_topic])
        extra = None
        if det3d_topic:
            b3, s3, c3, _ = detections3d_from_msg(slot[det3d_topic])
            extra = (b3, s3, c3)
        pred = Predictions(db, ds, dc, None, extra)
    image = bgr_image(slot[image_topic]) if image_topic and image_topic in slot else None
    return BagFrame(stamp, image, camera, gt, pred)


__all__ = [
    "TOPIC_GT2D",
    "TOPIC_GT3D",
    "TOPIC_IMAGE",
    "TOPIC_INFO",
    "BagFrame",
    "DatasetFrames",
    "bgr_image",
    "camera_from_dataset",
    "detections2d_from_msg",
    "detections3d_from_msg",
    "is_bag",
    "load_dataset",
    "messages_by_stamp",
    "read_bag",
]
