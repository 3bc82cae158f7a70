"""INT8 calibration data: frames from a folder of images or a rosbag topic, preprocessed as the card says.

The TensorRT calibrator (in :mod:`.tensorrt_backend`) only copies these batches to the GPU; everything
here is plain numpy so it is tested without TensorRT.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from perception_pkg.cards.schema import ModelCard
from perception_pkg.preprocess.pipeline import Preprocessor

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


def images_from_folder(folder: str | Path, limit: int | None = None) -> Iterator[NDArray[np.uint8]]:
    """BGR images from a folder (sorted by name, recursively), unreadable files skipped with a warning."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"calibration image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    count = 0
    for path in files:
        if limit is not None and count >= limit:
            return
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("skipping unreadable calibration image %s", path)
            continue
        count += 1
        yield image


def images_from_bag(bag: str | Path, topic: str, limit: int | None = None) -> Iterator[NDArray[np.uint8]]:
    """BGR frames of an Image or CompressedImage topic in a rosbag2 (sqlite3 or mcap); messages that do
    not deserialise are skipped with a warning."""
    from perception_pkg.bag import open_bag
    from perception_pkg.msgs import compressed_to_array, image_to_bgr  # ROS-free, rosbags-compatible

    count = 0
    with open_bag(bag) as reader:
        msgtype = reader.topics.get(topic)
        if msgtype is None:
            raise ValueError(f"topic {topic!r} not in {bag}; topics: {sorted(reader.topics)}")
        if msgtype not in IMAGE_TYPES:
            raise ValueError(f"topic {topic!r} has type {msgtype}, expected one of {IMAGE_TYPES}")
        try:
            for m in reader.messages([topic]):
                if limit is not None and count >= limit:
                    return
                msg = reader.deserialize(m)
                if msg is None:
                    continue
                count += 1
                if m.msgtype.endswith("CompressedImage"):
                    yield compressed_to_array(msg, color="bgr")
                else:
                    yield image_to_bgr(msg, copy=True)
        finally:
            reader.warn_malformed()


class CalibrationBatches:
    """Preprocessed float batches ``(batch, ...)`` in the card's layout, for the image input.

    Only full batches are produced (TensorRT's calibrator wants a fixed batch size); a trailing partial
    batch is dropped and counted in ``dropped``.
    """

    def __init__(self, card: ModelCard, images: Iterable[NDArray[np.uint8]], batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError("batch size must be >= 1")
        self.preprocessor = Preprocessor.from_card(card)
        self.images = images
        self.batch_size = batch_size
        self.shape = (batch_size, *self.preprocessor.spec.concrete_shape()[1:])
        self.dtype = np.dtype(self.preprocessor.spec.dtype)
        self.dropped = 0
        self.produced = 0

    def __iter__(self) -> Iterator[NDArray]:
        pending: list[NDArray] = []
        for image in self.images:
            pending.append(self.preprocessor(image).tensor[0])
            if len(pending) == self.batch_size:
                self.produced += 1
                yield np.ascontiguousarray(np.stack(pending), dtype=self.dtype)
                pending = []
        self.dropped = len(pending)
        if self.produced == 0:
            raise ValueError(f"calibration needs at least {self.batch_size} images, got {len(pending)}")
