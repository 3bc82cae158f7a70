"""sensor_msgs/CompressedImage <-> numpy through OpenCV's codecs.

Format strings follow image_transport: ``"jpeg"``, ``"png"``, ``"rgb8; jpeg compressed bgr8"`` (the
source encoding, the codec, and the channel order of what was compressed), and compressed_depth
_image_transport's ``"16UC1; compressedDepth png"`` / ``"32FC1; compressedDepth png"``. The codec is
detected from the bytes; the format string matters for channel order and for the depth header.

A damaged JPEG is malformed input, not a frame. libjpeg (inside OpenCV) decodes a stream with corrupt or
missing entropy-coded data into an image, grey or smeared where the data was bad, and only prints
"Corrupt JPEG data: ..." on stderr. Each JPEG is therefore first decoded strictly by libjpeg-turbo through
``simplejpeg`` (``strict=True``: any libjpeg warning is an error; to greyscale, ~0.3x the cost of the
colour decode), and a warning raises MessageFormatError quoting it. Without simplejpeg installed the
check is skipped, with one log line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from perception_pkg.msgs._common import byte_buffer, get_field, pack_bytes, str_field
from perception_pkg.msgs.errors import MessageFormatError
from perception_pkg.msgs.factory import MessageFactory
from perception_pkg.msgs.image import ENCODINGS

log = logging.getLogger(__name__)

_COMPRESSED = "sensor_msgs/msg/CompressedImage"
_CODECS = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png"}
_COLORS = ("bgr", "rgb", "mono", "passthrough")
# compressed_depth_image_transport's ConfigHeader: int32 format, float32 depthParam[2]
_DEPTH_HEADER = np.dtype([("format", "<i4"), ("quant_a", "<f4"), ("quant_b", "<f4")])


@dataclass(frozen=True)
class CompressedFormat:
    """A parsed ``CompressedImage.format``; None where the string does not say."""

    source_encoding: str | None
    codec: str | None
    compressed_encoding: str | None
    depth: bool


def parse_format(fmt: str) -> CompressedFormat:
    """Parse an image_transport format string; unknown codec names raise MessageFormatError."""
    if not isinstance(fmt, str):
        raise MessageFormatError(_COMPRESSED, "format", "a string", type(fmt).__name__)
    source, sep, rest = fmt.partition(";")
    if not sep:
        source, rest = "", fmt
    source = source.strip() or None
    codec = compressed = None
    depth = False
    tokens = rest.split()
    i = 0
    while i < len(tokens):
        word = tokens[i].lower()
        if word in _CODECS:
            codec = _CODECS[word]
        elif word == "compresseddepth":
            depth = True
        elif word == "compressed" and i + 1 < len(tokens):
            compressed = tokens[i + 1]
            i += 1
        elif not sep and i == 0 and tokens[i] in ENCODINGS:
            # a bare image encoding without ';' ("rgb8"): some drivers write only that
            source = tokens[i]
        else:
            raise MessageFormatError(_COMPRESSED, "format", "jpeg or png (image_transport syntax)", fmt)
        i += 1
    if depth and codec not in (None, "png"):
        raise MessageFormatError(_COMPRESSED, "format", "compressedDepth with png", fmt)
    return CompressedFormat(source, codec, compressed, depth)


#: Larger declared images are refused before decoding: a corrupt or hostile header must not make a
#: node allocate gigabytes (OpenCV's own limit is 2**30 pixels).
MAX_PIXELS = 2**27

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
# JPEG start-of-frame markers (SOF0..SOF15 without DHT, JPG and DAC), which carry the image size
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _declared_size(head: memoryview) -> tuple[str, int, int] | None:
    """(codec, height, width) read from a PNG IHDR or a JPEG SOF segment; None if not found."""
    if head[:8] == _PNG_MAGIC:
        if len(head) < 24 or head[12:16] != b"IHDR":
            return None
        return "png", int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")
    pos = 2
    # walks segment headers (a few dozen per file), not pixels
    while pos + 9 <= len(head):
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_SOF:
            return (
                "jpeg",
                int.from_bytes(head[pos + 5 : pos + 7], "big"),
                int.from_bytes(head[pos + 7 : pos + 9], "big"),
            )
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length field
            pos += 2
            continue
        pos += 2 + int.from_bytes(head[pos + 2 : pos + 4], "big")
    return None


_strict: list[Any] = []  # [simplejpeg module or None], filled on first use


def _simplejpeg() -> Any:
    if not _strict:
        try:
            import simplejpeg
        except ImportError:
            simplejpeg = None
            log.warning(
                "simplejpeg is not installed: damaged JPEGs are not detected (pip install simplejpeg)"
            )
        _strict.append(simplejpeg)
    return _strict[0]


def _check_jpeg(buf: np.ndarray) -> None:
    """MessageFormatError when libjpeg reports any problem with the stream (see the module docstring)."""
    sj = _simplejpeg()
    if sj is None:
        return
    data = np.ascontiguousarray(buf)
    try:
        colorspace = sj.decode_jpeg_header(data)[2]
        # decoding to greyscale still entropy-decodes every component, which is where damage shows
        sj.decode_jpeg(data, colorspace="CMYK" if colorspace in ("CMYK", "YCCK") else "GRAY", strict=True)
    except ValueError as exc:
        raise MessageFormatError(
            _COMPRESSED,
            "data",
            "a JPEG stream libjpeg decodes without errors",
            f"{buf.size} bytes",
            f"libjpeg: {exc}",
        ) from exc


def _decode(buf: np.ndarray, flags: int) -> np.ndarray:
    head = memoryview(buf)
    if not (head[:8] == _PNG_MAGIC or head[:3] == _JPEG_MAGIC):
        # OpenCV would try every decoder it has (TIFF, EXR, PXM...); only the two codecs of the
        # image_transport formats are accepted, which keeps the rest of that attack surface closed
        raise MessageFormatError(
            _COMPRESSED, "data", "a JPEG or PNG stream (by its signature)", head[:8].tobytes()
        )
    declared = _declared_size(head)
    if declared is None:
        raise MessageFormatError(
            _COMPRESSED,
            "data",
            "a JPEG or PNG header stating the image size",
            f"{buf.size} bytes without one",
        )
    codec, height, width = declared
    if height * width > MAX_PIXELS or height == 0 or width == 0:
        raise MessageFormatError(
            _COMPRESSED, "data", f"a {codec} image of 1..{MAX_PIXELS} pixels", f"{height}x{width}"
        )
    if codec == "jpeg":
        _check_jpeg(buf)
    try:
        img = cv2.imdecode(buf, flags)
    except cv2.error as exc:
        raise MessageFormatError(
            _COMPRESSED, "data", "a JPEG or PNG stream", f"{buf.size} bytes", str(exc).strip()
        ) from exc
    if img is None or img.size == 0:
        raise MessageFormatError(
            _COMPRESSED, "data", "a JPEG or PNG stream OpenCV can decode", f"{buf.size} undecodable bytes"
        )
    return img


def _decode_depth(buf: np.ndarray, parsed: CompressedFormat) -> np.ndarray:
    if buf.size <= _DEPTH_HEADER.itemsize:
        raise MessageFormatError(
            _COMPRESSED, "data", f"> {_DEPTH_HEADER.itemsize} bytes (header + png)", buf.size
        )
    header = buf[: _DEPTH_HEADER.itemsize].view(_DEPTH_HEADER)[0]
    img = _decode(buf[_DEPTH_HEADER.itemsize :], cv2.IMREAD_UNCHANGED)
    if img.dtype != np.uint16 or img.ndim != 2:
        raise MessageFormatError(
            _COMPRESSED,
            "data",
            "a single-channel 16-bit png after the depth header",
            f"{img.dtype} {img.shape}",
        )
    source = parsed.source_encoding or "16UC1"
    if source == "16UC1":
        return img
    if source != "32FC1":
        raise MessageFormatError(_COMPRESSED, "format", "compressedDepth of 16UC1 or 32FC1", source)
    # the publisher stores inverse depth: q = quant_a / depth + quant_b, 0 where depth was invalid
    quant_a, quant_b = float(header["quant_a"]), float(header["quant_b"])
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = (quant_a / (img.astype(np.float32) - np.float32(quant_b))).astype(np.float32)
    depth[img == 0] = np.nan
    return depth


def compressed_to_array(msg: Any, *, color: str = "bgr") -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage``.

    ``color``: ``"bgr"`` / ``"rgb"`` give HxWx3 uint8 in that order (grey images replicated),
    ``"mono"`` HxW uint8, ``"passthrough"`` whatever the stream holds (16-bit PNG stays uint16, alpha
    kept, channel order as stored). compressedDepth messages need ``"passthrough"`` and give uint16 or
    float32 (NaN where invalid) depth. Garbage raises MessageFormatError.
    """
    if color not in _COLORS:
        raise ValueError(f"color must be one of {_COLORS}, not {color!r}")
    parsed = parse_format(str_field(msg, "format", _COMPRESSED))
    buf = byte_buffer(get_field(msg, "data", _COMPRESSED), _COMPRESSED)
    if buf.size == 0:
        raise MessageFormatError(_COMPRESSED, "data", "a non-empty compressed stream", 0)
    if parsed.depth:
        if color != "passthrough":
            raise MessageFormatError(
                _COMPRESSED,
                "format",
                f"a colour image for color={color!r}",
                "compressedDepth",
                "decode depth with color='passthrough'",
            )
        return _decode_depth(buf, parsed)
    stored_rgb = (parsed.compressed_encoding or "").startswith("rgb")
    if color == "passthrough":
        return _decode(buf, cv2.IMREAD_UNCHANGED)
    img = _decode(buf, cv2.IMREAD_COLOR)  # always 3-channel 8-bit BGR (as far as OpenCV knows)
    if color == "mono":
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY if stored_rgb else cv2.COLOR_BGR2GRAY)
    if stored_rgb == (color == "rgb"):
        return img
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def array_to_compressed(
    array: np.ndarray,
    header: Any,
    types: MessageFactory,
    *,
    fmt: str = "jpeg",
    quality: int = 90,
    color: str = "bgr",
    png_level: int = 3,
) -> Any:
    """Encode ``array`` as a ``sensor_msgs/CompressedImage`` the way image_transport does.

    ``array``: HxW / HxWx1 (mono), HxWx3 or (png only) HxWx4, uint8, or uint16 for png. ``color`` is
    the channel order of ``array`` (``"bgr"`` or ``"rgb"``); the stream is always stored BGR, and the
    format string says so (``"rgb8; jpeg compressed bgr8"``). ``quality`` is the JPEG quality (0-100),
    ``png_level`` the PNG compression level (0-9).
    """
    codec = _CODECS.get(fmt.lower()) if isinstance(fmt, str) else None
    if codec is None:
        raise ValueError(f"fmt must be 'jpeg' or 'png', not {fmt!r}")
    if color not in ("bgr", "rgb"):
        raise ValueError(f"color must be 'bgr' or 'rgb', not {color!r}")
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    channels = 1 if arr.ndim == 2 else (arr.shape[2] if arr.ndim == 3 else 0)
    allowed = (1, 3, 4) if codec == "png" else (1, 3)
    if channels not in allowed or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise MessageFormatError(
            _COMPRESSED, "data", f"a non-empty HxW or HxWxC image with C in {allowed}", arr.shape
        )
    dtypes = (np.uint8, np.uint16) if codec == "png" else (np.uint8,)
    if arr.dtype not in dtypes:
        raise MessageFormatError(
            _COMPRESSED, "data", f"dtype in {[np.dtype(d).name for d in dtypes]}", str(arr.dtype)
        )
    bits = 8 * arr.dtype.itemsize
    if channels == 1:
        source = stored = f"mono{bits}"
    else:
        stored = ("bgr" if channels == 3 else "bgra") + str(bits)
        source = (color if channels == 3 else color + "a") + str(bits)
        if color == "rgb":
            arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR if channels == 3 else cv2.COLOR_RGBA2BGRA)
    if codec == "jpeg":
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
        ext = ".jpg"
    else:
        params = [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)]
        ext = ".png"
    ok, encoded = cv2.imencode(ext, arr, params)
    if not ok:  # pragma: no cover - the checks above match what the encoders accept
        raise MessageFormatError(_COMPRESSED, "data", f"an image OpenCV can encode as {codec}", arr.shape)
    return types.CompressedImage(
        header=header,
        format=f"{source}; {codec} compressed {stored}",
        data=pack_bytes(types.CompressedImage, encoded, owned=True),
    )
