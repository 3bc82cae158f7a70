"""Every kind of recording read as a ROS 2 bag: rosbag2, ROS 1 bags, image folders and video files.

:func:`open_recording` returns an object with the :class:`~perception_pkg.bag.reader.BagReader` API
(``connections``, ``messages``, ``deserialize``, ``decoded``, times), so replay and evaluation take an
image folder or a video exactly as they take a rosbag2 or a ROS 1 bag: each frame becomes a
``sensor_msgs/Image`` (bgr8) on ``/camera/image_raw`` and, when a calibration is known, a
``sensor_msgs/CameraInfo`` with the same stamp on ``/camera/camera_info``. Frames are stamped at
``fps`` from ``start_ns``; the header's ``frame_id`` is ``camera``.

A ROS 1 bag is read by rosbags and each message converted to ROS 2 CDR as it is read (rosbags'
converter: ROS 1 ``Header.seq`` dropped, every other field, stamp and frame kept; types our typestore
lacks are registered from the bag's own definitions), so replay's output bag is ROS 2 throughout.

Calibration: a KITTI ``calib`` file (its ``P2``) for every frame, or a folder of them named after the
images (KITTI's layout: ``calib/000123.txt`` beside ``image_2/000123.png``), found next to the images
when not given. Images are decoded with OpenCV (any format it reads); a file it cannot read is skipped
and counted in ``malformed`` like a corrupt bag message.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perception_pkg.bag.reader import BagMessage, open_bag
from perception_pkg.bag.typestore import get_typestore

IMAGE_TOPIC = "/camera/image_raw"
INFO_TOPIC = "/camera/camera_info"
FRAME_ID = "camera"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")
_NS = 1_000_000_000


@dataclass(frozen=True)
class _Conn:
    """What callers read of a rosbags Connection."""

    id: int
    topic: str
    msgtype: str


def kind_of(path: str | Path) -> str:
    """``bag`` (rosbag2 folder, .mcap/.db3 file, ROS 1 .bag), ``images`` (a folder of images), ``video``,
    or ``unknown``."""
    path = Path(path)
    if path.is_dir():
        if (path / "metadata.yaml").is_file():
            return "bag"
        if any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()):
            return "images"
        return "unknown"
    suffix = path.suffix.lower()
    if suffix in (".bag", ".mcap", ".db3"):
        return "bag"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return "unknown"


def open_recording(
    path: str | Path,
    typestore: Any = None,
    *,
    fps: float = 10.0,
    calib: str | Path | None = None,
    start_ns: int = 1_700_000_000 * _NS,
) -> Any:
    """A reader for a bag, an image folder or a video (see the module docstring); FileNotFoundError or
    ValueError with one line for anything else."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"recording not found: {path}")
    kind = kind_of(path)
    if kind == "bag" and path.suffix.lower() == ".bag":
        return Ros1Recording(open_bag(path), typestore or get_typestore())
    if kind == "bag":
        return open_bag(path, typestore)
    if kind in ("images", "video"):
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        return FrameRecording(path, kind, typestore or get_typestore(), fps, calib, start_ns)
    raise ValueError(
        f"{path}: not a recording: expected a rosbag2 (folder with metadata.yaml, .mcap, .db3), a ROS 1 "
        f".bag, a folder of images ({', '.join(IMAGE_SUFFIXES)}) or a video ({', '.join(VIDEO_SUFFIXES)})"
    )


class Ros1Recording:
    """A ROS 1 bag whose messages come out as ROS 2 CDR of the project's types (BagReader API)."""

    def __init__(self, reader: Any, typestore: Any) -> None:
        self._reader = reader
        self.typestore = typestore
        self._convert: dict[str, Any] = {}
        self._cache: dict[str, object] = {}

    def __getattr__(self, name: str) -> Any:  # connections, topics, times, malformed, errors, require ...
        return getattr(self._reader, name)

    def __enter__(self) -> Ros1Recording:
        self._reader.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self._reader.close()

    def _converter(self, msgtype: str) -> Any:
        conv = self._convert.get(msgtype)
        if conv is None:
            from rosbags.convert.converter import generate_message_converter
            from rosbags.typesys import get_types_from_msg

            src = self._reader._reader.typestore  # the ROS 1 bag's own definitions
            if msgtype not in self.typestore.fielddefs:
                text, _ = src.generate_msgdef(msgtype, ros_version=2)
                types = get_types_from_msg(text, msgtype)
                types.pop("std_msgs/msg/Header", None)
                self.typestore.register({k: v for k, v in types.items() if k not in self.typestore.fielddefs})
            conv = generate_message_converter(
                src, self.typestore, msgtype, msgtype, self._cache, src_is2=False, dst_is2=True
            )
            self._convert[msgtype] = conv
        return conv

    def messages(self, topics: Collection[str] | None = None) -> Iterator[BagMessage]:
        for m in self._reader.messages(topics):
            try:
                raw = bytes(self._converter(m.msgtype)(m.raw))
            except Exception as exc:  # a truncated or corrupt ROS 1 message: count it, go on
                self._reader.malformed[m.topic] = self._reader.malformed.get(m.topic, 0) + 1
                self._reader.errors[m.topic] = f"ROS 1 -> ROS 2: {type(exc).__name__}: {exc}"
                continue
            yield BagMessage(m.topic, m.msgtype, m.stamp, raw, None)

    def deserialize(self, message: BagMessage) -> Any | None:
        try:
            return self.typestore.deserialize_cdr(message.raw, message.msgtype)
        except Exception as exc:
            self._reader.malformed[message.topic] = self._reader.malformed.get(message.topic, 0) + 1
            self._reader.errors[message.topic] = f"{type(exc).__name__}: {exc}"
            return None

    def decoded(self, topics: Collection[str] | None = None) -> Iterator[tuple[BagMessage, Any]]:
        for m in self.messages(topics):
            msg = self.deserialize(m)
            if msg is not None:
                yield m, msg


def image_files(folder: Path) -> list[Path]:
    """The images of a folder in name order (KITTI and COCO name frames so that this is time order)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _calib_for(image: Path, calib: Path | None) -> Path | None:
    if calib is not None:
        return calib / f"{image.stem}.txt" if calib.is_dir() else calib
    # KITTI layout: <root>/image_2/<id>.png and <root>/calib/<id>.txt
    guess = image.parent.parent / "calib" / f"{image.stem}.txt"
    return guess if guess.is_file() else None


class FrameRecording:
    """An image folder or a video as a read-only recording with the BagReader API."""

    def __init__(
        self, path: Path, kind: str, typestore: Any, fps: float, calib: str | Path | None, start_ns: int
    ) -> None:
        self.path = path
        self.kind = kind
        self.typestore = typestore
        self.period_ns = round(_NS / fps)
        self.start_ns = start_ns
        self.calib = Path(calib) if calib is not None else None
        if self.calib is not None and not self.calib.exists():
            raise FileNotFoundError(f"calibration not found: {self.calib}")
        self.malformed: dict[str, int] = {}
        self.errors: dict[str, str] = {}
        self._files = image_files(path) if kind == "images" else []
        self._frames = len(self._files) if kind == "images" else self._video_frames()
        has_info = self.calib is not None or (
            kind == "images" and any(_calib_for(f, None) for f in self._files)
        )
        self.connections = [_Conn(0, IMAGE_TOPIC, "sensor_msgs/msg/Image")]
        if has_info:
            self.connections.append(_Conn(1, INFO_TOPIC, "sensor_msgs/msg/CameraInfo"))
        self._decoded: dict[tuple[str, int], Any] = {}

    # --- the BagReader surface --------------------------------------------------------------------
    def __enter__(self) -> FrameRecording:
        return self

    def __exit__(self, *exc: object) -> None:
        self._decoded.clear()

    def open(self) -> FrameRecording:
        return self

    def close(self) -> None:
        self._decoded.clear()

    @property
    def topics(self) -> dict[str, str]:
        return {c.topic: c.msgtype for c in self.connections}

    @property
    def message_count(self) -> int:
        return self._frames * len(self.connections)

    @property
    def start_time(self) -> int:
        return self.start_ns

    @property
    def end_time(self) -> int:
        return self.start_ns + max(self._frames - 1, 0) * self.period_ns

    @property
    def duration(self) -> int:
        return self.end_time - self.start_time

    def require(self, topics: Collection[str]) -> None:
        missing = sorted(set(topics) - set(self.topics))
        if missing:
            raise ValueError(f"{self.path}: no topic {', '.join(missing)} (it has {sorted(self.topics)})")

    def messages(self, topics: Collection[str] | None = None) -> Iterator[BagMessage]:
        """Frame by frame: the CameraInfo (when there is one) then the image, same stamp."""
        from perception_pkg.msgs import MessageFactory, array_to_image, make_header, model_to_camera_info

        types = MessageFactory.rosbags(self.typestore)
        want = set(self.topics) if topics is None else set(topics)
        for i, (name, bgr) in enumerate(self._images()):
            stamp = self.start_ns + i * self.period_ns
            if bgr is None:
                self.malformed[IMAGE_TOPIC] = self.malformed.get(IMAGE_TOPIC, 0) + 1
                self.errors[IMAGE_TOPIC] = f"{name}: not an image OpenCV can read"
                continue
            header = make_header(types, stamp, FRAME_ID)
            if INFO_TOPIC in self.topics and INFO_TOPIC in want:
                camera = self._camera(name, bgr.shape[:2])
                if camera is not None:
                    yield self._message(INFO_TOPIC, stamp, model_to_camera_info(camera, header, types))
            if IMAGE_TOPIC in want:
                yield self._message(IMAGE_TOPIC, stamp, array_to_image(bgr, "bgr8", header, types))

    def deserialize(self, message: BagMessage) -> Any | None:
        msg = self._decoded.pop((message.topic, message.stamp), None)
        if msg is None:
            msg = self.typestore.deserialize_cdr(message.raw, message.msgtype)
        return msg

    def decoded(self, topics: Collection[str] | None = None) -> Iterator[tuple[BagMessage, Any]]:
        for m in self.messages(topics):
            yield m, self.deserialize(m)

    def warn_malformed(self) -> None:
        import logging

        for topic, n in sorted(self.malformed.items()):
            logging.getLogger(__name__).warning(
                "%s: skipped %d frame(s) on %s: %s", self.path, n, topic, self.errors[topic]
            )

    # --- frames ------------------------------------------------------------------------------------
    def _message(self, topic: str, stamp: int, msg: Any) -> BagMessage:
        # replay copies the raw CDR into its output bag, so it is serialised once here; the object is
        # kept so that deserialize() need not parse it back
        self._decoded[(topic, stamp)] = msg
        conn = next(c for c in self.connections if c.topic == topic)
        raw = self.typestore.serialize_cdr(msg, conn.msgtype)
        return BagMessage(topic, conn.msgtype, stamp, raw, None)

    def _images(self) -> Iterator[tuple[str, np.ndarray | None]]:
        import cv2

        if self.kind == "images":
            for f in self._files:
                yield f.name, cv2.imread(str(f), cv2.IMREAD_COLOR)
            return
        cap = cv2.VideoCapture(str(self.path))
        try:
            i = 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                yield f"frame {i}", frame
                i += 1
        finally:
            cap.release()

    def _video_frames(self) -> int:
        import cv2

        cap = cv2.VideoCapture(str(self.path))
        try:
            if not cap.isOpened():
                raise ValueError(f"{self.path}: OpenCV cannot open this video")
            return max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        finally:
            cap.release()

    def _camera(self, name: str, hw: tuple[int, int]) -> Any:
        from perception_pkg.datasets import kitti

        image = self.path / name if self.kind == "images" else self.path
        calib = _calib_for(image, self.calib) if self.kind == "images" else self.calib
        if calib is None or not calib.is_file():
            return None
        return kitti.camera_model(calib, hw)
