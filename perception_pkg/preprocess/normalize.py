"""Colour order, scale/mean/std normalisation and tensor layout, with exact inverses.

Images arrive as BGR uint8 ``(H, W, 3)`` or batches ``(N, H, W, 3)``; the network gets
``(pixel * scale - mean) / std`` in its colour order and layout. ``Normalizer.invert`` undoes all of it
(back to BGR uint8), which is what an image-to-image model's output needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray


def to_layout(batch_nhwc: NDArray, layout: str) -> NDArray:
    """(N, H, W, C) -> the network's layout, contiguous."""
    if layout == "NHWC":
        return np.ascontiguousarray(batch_nhwc)
    if layout == "NCHW":
        return np.ascontiguousarray(batch_nhwc.transpose(0, 3, 1, 2))
    raise ValueError(f"unknown layout {layout!r}")


def from_layout(tensor: NDArray, layout: str) -> NDArray:
    """The network's layout -> (N, H, W, C); inverse of :func:`to_layout`."""
    if layout == "NHWC":
        return tensor
    if layout == "NCHW":
        return tensor.transpose(0, 2, 3, 1)
    raise ValueError(f"unknown layout {layout!r}")


class Normalizer:
    """Pixel values <-> network values for one input spec (colour order, scale, mean, std, layout)."""

    def __init__(
        self,
        scale: float = 1.0 / 255.0,
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
        color: str = "RGB",
        layout: str = "NCHW",
        dtype: str = "float32",
    ) -> None:
        self.color = color
        self.layout = layout
        self.dtype = np.dtype(dtype)
        self.channels = 1 if color == "GRAY" else 3
        mean_a = np.broadcast_to(np.asarray(mean, dtype=np.float64), (self.channels,))
        std_a = np.broadcast_to(np.asarray(std, dtype=np.float64), (self.channels,))
        self.scale = float(scale)
        self.mean = mean_a.copy()
        self.std = std_a.copy()
        # x * mul + add == (x * scale - mean) / std, folded so the hot path is one multiply-add
        self._mul = (self.scale / std_a).astype(np.float32)
        self._add = (-mean_a / std_a).astype(np.float32)
        self._raw = self.dtype.kind in "ui"
        if self._raw and not (self.scale == 1.0 and np.all(self.mean == 0) and np.all(self.std == 1)):
            raise ValueError("integer network inputs take raw pixels: scale must be 1, mean 0 and std 1")

    def _channel_shape(self, ndim: int) -> tuple[int, ...]:
        shape = [1] * ndim
        shape[1 if self.layout == "NCHW" else ndim - 1] = self.channels
        return tuple(shape)

    def __call__(self, images_bgr: NDArray) -> NDArray:
        """BGR uint8 ``(N, H, W, 3)`` -> network tensor in its layout and dtype."""
        batch = images_bgr[None] if images_bgr.ndim == 3 else images_bgr
        if batch.shape[-1] != 3:
            raise ValueError(f"expected BGR images with 3 channels, got shape {images_bgr.shape}")
        if self.color == "GRAY":
            # one cvtColor over the batch stacked vertically: OpenCV's own fixed-point grey levels
            n, h, w = batch.shape[:3]
            stacked = np.ascontiguousarray(batch).reshape(n * h, w, 3)
            px = cv2.cvtColor(stacked, cv2.COLOR_BGR2GRAY).reshape(n, h, w, 1)
        elif self.color == "RGB":
            px = batch[..., ::-1]
        else:
            px = batch
        if self.layout == "NCHW" and not self._raw and self.color != "GRAY" and batch.dtype == np.uint8:
            return self._planar(batch)
        tensor = to_layout(px, self.layout)
        if self._raw:
            return tensor.astype(self.dtype, copy=False)
        out = tensor.astype(np.float32)
        cshape = self._channel_shape(out.ndim)
        out *= self._mul.reshape(cshape)
        out += self._add.reshape(cshape)
        return out.astype(self.dtype, copy=False)

    def _planar(self, batch_bgr: NDArray) -> NDArray:
        """The float NCHW tensor of a BGR batch: one cv2.split of the batch into colour planes, then one
        multiply (and an add, skipped when it adds 0) per plane into its channel of the output. The same
        float32 arithmetic as the general path (x * mul + add, cast at the end), without numpy's slow
        strided uint8 transpose."""
        n, h, w, _ = batch_bgr.shape
        planes = cv2.split(np.ascontiguousarray(batch_bgr).reshape(n * h, w, 3))  # B, G, R
        order = (2, 1, 0) if self.color == "RGB" else (0, 1, 2)
        out = np.empty((n, 3, h, w), dtype=np.float32)
        for c, src in enumerate(order):
            dst = out[:, c]
            np.multiply(planes[src].reshape(n, h, w), self._mul[c], out=dst, dtype=np.float32)
            if self._add[c] != 0:  # adding 0 (or -0) leaves every value as it is
                dst += self._add[c]
        return out.astype(self.dtype, copy=False)

    def pixels(self, tensor: NDArray) -> NDArray[np.float64]:
        """Exact inverse of the arithmetic: network tensor -> float pixel values ``(N, H, W, C)``.

        Colour order is the network's (use :meth:`invert` for BGR uint8 images).
        """
        x = from_layout(np.asarray(tensor), self.layout).astype(np.float64)
        if self._raw:
            return x
        return (x * self.std + self.mean) / self.scale

    def invert(self, tensor: NDArray) -> NDArray[np.uint8]:
        """Network tensor -> BGR uint8 images ``(N, H, W, 3)`` (GRAY is replicated to 3 channels)."""
        x = np.asarray(tensor)
        if self.layout == "NCHW" and self.color != "GRAY" and not self._raw and x.dtype == np.float32:
            return self._invert_planar(x)
        px = np.clip(np.rint(self.pixels(tensor)), 0, 255).astype(np.uint8)
        if self.color == "GRAY":
            return np.repeat(px, 3, axis=-1)
        if self.color == "RGB":
            return np.ascontiguousarray(px[..., ::-1])
        return np.ascontiguousarray(px)

    def _invert_planar(self, x: NDArray[np.float32]) -> NDArray[np.uint8]:
        """:meth:`invert` of a float32 NCHW colour tensor plane by plane (one multiply-add, clip and round
        per plane into a float32 scratch, written into its BGR channel): the general path's float64 copy
        of a strided transpose cost 31 ms a 640x480 frame on a loaded machine, this one 0.8. The pixel is
        (x * std + mean) / scale as there, in float32 (x * a + b): a round trip from uint8 is still exact,
        and a value within float32 rounding of a .5 boundary may land one grey level apart."""
        n, c, h, w = x.shape
        if c != 3:
            raise ValueError(f"expected a 3-channel image output, got shape {x.shape}")
        a = (self.std / self.scale).astype(np.float32)
        b = (self.mean / self.scale).astype(np.float32)
        order = (2, 1, 0) if self.color == "RGB" else (0, 1, 2)  # BGR channel k <- network channel
        out = np.empty((n, h, w, 3), dtype=np.uint8)
        tmp = np.empty((h, w), dtype=np.float32)
        for i in range(n):
            for k, ch in enumerate(order):
                np.multiply(x[i, ch], a[ch], out=tmp)
                tmp += b[ch]
                np.clip(tmp, 0.0, 255.0, out=tmp)
                np.rint(tmp, out=tmp)
                out[i, :, :, k] = tmp
        return out
