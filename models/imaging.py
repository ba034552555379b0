"""Turn untrusted image bytes into an RGB array, or say precisely why not.

Images arrive from anywhere, so decoding is defensive: the pixel count is
checked from the header before any pixel is decoded (decompression bombs), the
whole image is decoded eagerly so truncated files fail here instead of
half-decoding into grey bands, and JPEG/PNG byte structure is validated first
because Pillow's libjpeg silently ignores "corrupt data" warnings.
"""

from __future__ import annotations

import io
import struct
import sys
import warnings
import zlib
from typing import Any, Final

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

EMPTY_OBJECT: Final = "empty_object"
NOT_AN_IMAGE: Final = "not_an_image"
IMAGE_CORRUPT: Final = "image_corrupt"
IMAGE_TOO_LARGE: Final = "image_too_large"
REASONS: Final = (EMPTY_OBJECT, NOT_AN_IMAGE, IMAGE_CORRUPT, IMAGE_TOO_LARGE)

# Formats we accept. "JPEG" also opens multi-picture (MPO) files from phone cameras.
ALLOWED_FORMATS: Final = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_MAGIC: Final = (
    (b"\xff\xd8\xff", "JPEG"),
    (_PNG_SIGNATURE, "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)

# JPEG markers that carry a length-prefixed segment and may legally appear between scans.
_SOF_MARKERS: Final = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_SEGMENT_MARKERS: Final = _SOF_MARKERS | {0xC4, 0xCC, 0xDB, 0xDC, 0xDD, 0xFE} | set(range(0xE0, 0xF0))
_SOS, _EOI, _DRI = 0xDA, 0xD9, 0xDD


class ImageError(Exception):
    """An image that cannot be used, with a stable machine-readable ``reason`` for dead-letter routing."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown image error reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def sniff_format(data: bytes) -> str | None:
    """Name the image format from magic bytes, so a broken image is told apart from a non-image."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode ``data`` into a C-contiguous HxWx3 uint8 RGB array, EXIF orientation applied.

    Raises ImageError with reason ``empty_object``, ``not_an_image``, ``image_corrupt``
    or ``image_too_large`` (more than ``max_pixels`` pixels, or over Pillow's own bomb limit).
    Safe to call from worker threads: Pillow releases the GIL while decoding.
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # A global someone flipped; with it Pillow pads truncated files with grey instead of failing.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must be False for decode_image")
    if not data:
        raise ImageError(EMPTY_OBJECT, "object has no bytes")
    fmt = sniff_format(data)
    if fmt == "JPEG":
        _check_jpeg_structure(data)
    elif fmt == "PNG":
        _check_png_structure(data)

    image = _open(data, fmt)
    try:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise ImageError(IMAGE_CORRUPT, f"header declares an empty {width}x{height} image")
        if width * height > max_pixels:
            raise ImageError(IMAGE_TOO_LARGE, f"{width}x{height} exceeds the {max_pixels} pixel cap")
        try:
            image.load()  # force the full decode now: a truncated file raises here
            oriented = ImageOps.exif_transpose(image)
        except ImageError:
            raise
        except Image.DecompressionBombError as exc:
            raise ImageError(IMAGE_TOO_LARGE, str(exc)) from exc
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, zlib.error, struct.error) as exc:
            raise ImageError(IMAGE_CORRUPT, f"{image.format or 'image'} decode failed: {exc}") from exc
        return _to_rgb_array(oriented if oriented is not None else image)
    finally:
        image.close()


def _pil_open() -> Any:
    """Pillow's own ``Image.open``: Ultralytics replaces it with one that, on an unidentified file,
    tries to import (or install) a HEIF plugin; a non-image must simply be a non-image here."""
    patches = sys.modules.get("ultralytics.utils.patches")
    return getattr(patches, "_image_open", Image.open)


def _open(data: bytes, fmt: str | None) -> Image.Image:
    """Open (header only) with bomb warnings promoted to errors."""
    try:
        with warnings.catch_warnings():
            # catch_warnings is process-global; concurrent calls can at worst leave this same filter behind.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _pil_open()(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(IMAGE_TOO_LARGE, str(exc)) from exc
    except (UnidentifiedImageError, ImportError) as exc:  # ImportError: a patched open's plugin fallback
        if fmt is not None:
            raise ImageError(IMAGE_CORRUPT, f"{fmt} signature but unreadable header") from exc
        raise ImageError(NOT_AN_IMAGE, f"not a supported image ({', '.join(ALLOWED_FORMATS)})") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        raise ImageError(IMAGE_CORRUPT, f"unreadable header: {exc}") from exc


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to 8-bit RGB; alpha is composited onto white like a browser would."""
    mode = image.mode
    if mode == "RGB":
        rgb = image
    elif mode.startswith("I;16") or mode in ("I", "F"):
        rgb = Image.fromarray(_high_depth_to_uint8(np.asarray(image), mode)).convert("RGB")
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA") if mode != "La" else image.convert("LA").convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(background, rgba).convert("RGB")
    else:
        try:
            rgb = image.convert("RGB")
        except ValueError as exc:
            raise ImageError(NOT_AN_IMAGE, f"unsupported pixel mode {mode}") from exc
    array = np.asarray(rgb, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ImageError(IMAGE_CORRUPT, f"decoded to unexpected shape {array.shape}")
    return np.ascontiguousarray(array)


def _high_depth_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Scale 16-bit, 32-bit int or float greyscale to 0..255 instead of clipping it to white."""
    if mode.startswith("I;16"):
        return (values.astype(np.uint16) >> 8).astype(np.uint8)
    as_float = values.astype(np.float64)
    if mode == "F" and as_float.size and float(np.nanmax(as_float)) <= 1.0:
        as_float = as_float * 255.0
    elif as_float.size and float(np.nanmax(as_float)) > 255.0:
        as_float = as_float / 257.0  # 16-bit data stored as 32-bit int (older Pillow PNG path)
    return np.clip(np.nan_to_num(as_float), 0, 255).astype(np.uint8)


def _check_png_structure(data: bytes) -> None:
    """Walk PNG chunks checking every CRC: catches truncation and corrupted bytes anywhere, cheaply."""
    pos = len(_PNG_SIGNATURE)
    first = True
    while True:
        if pos + 8 > len(data):
            raise ImageError(IMAGE_CORRUPT, "PNG truncated before IEND")
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > len(data):
            raise ImageError(IMAGE_CORRUPT, f"PNG chunk {kind!r} runs past the end of the file")
        if first and kind != b"IHDR":
            raise ImageError(IMAGE_CORRUPT, "PNG does not start with IHDR")
        first = False
        crc = int.from_bytes(data[end - 4 : end], "big")
        if zlib.crc32(memoryview(data)[pos + 4 : end - 4]) != crc:
            raise ImageError(IMAGE_CORRUPT, f"PNG chunk {kind!r} fails its CRC")
        if kind == b"IEND":
            return
        pos = end


def _check_jpeg_structure(data: bytes) -> None:
    """Validate JPEG marker structure up to EOI.

    libjpeg reports damaged entropy data only as warnings, which Pillow discards,
    so a broken file would decode into garbage. This walk catches truncation,
    bad segment lengths, stray or unknown markers inside the scan data and
    restart markers out of sequence. Corruption that keeps the marker structure
    intact (e.g. a zero-filled block mid-scan) is undetectable without a strict
    decoder.
    """
    size = len(data)
    pos = 2
    seen_frame = seen_scan = False
    restart_interval = 0
    while True:
        if pos >= size or data[pos] != 0xFF:
            raise ImageError(IMAGE_CORRUPT, f"JPEG: expected a marker at byte {pos}")
        while pos < size and data[pos] == 0xFF:  # fill bytes may precede a marker
            pos += 1
        if pos >= size:
            raise ImageError(IMAGE_CORRUPT, "JPEG truncated inside a marker")
        marker = data[pos]
        pos += 1
        if marker == _EOI:
            if not (seen_frame and seen_scan):
                raise ImageError(IMAGE_CORRUPT, "JPEG ends before any frame or scan")
            return  # bytes after EOI (phone trailers, motion photos) are legal and ignored
        if marker != _SOS and marker not in _SEGMENT_MARKERS:
            raise ImageError(IMAGE_CORRUPT, f"JPEG: unexpected marker 0xFF{marker:02X} at byte {pos - 2}")
        if pos + 2 > size:
            raise ImageError(IMAGE_CORRUPT, "JPEG truncated inside a segment length")
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > size:
            raise ImageError(IMAGE_CORRUPT, f"JPEG: segment 0xFF{marker:02X} has impossible length {length}")
        segment = data[pos + 2 : pos + length]
        pos += length
        if marker in _SOF_MARKERS:
            if len(segment) < 6 or len(segment) != 6 + 3 * segment[5]:
                raise ImageError(IMAGE_CORRUPT, "JPEG: malformed frame header")
            seen_frame = True
        elif marker == _DRI:
            if len(segment) != 2:
                raise ImageError(IMAGE_CORRUPT, "JPEG: malformed restart interval")
            restart_interval = int.from_bytes(segment, "big")
        elif marker == _SOS:
            if not seen_frame or not segment or len(segment) != 4 + 2 * segment[0]:
                raise ImageError(IMAGE_CORRUPT, "JPEG: malformed or misplaced scan header")
            seen_scan = True
            pos = _skip_entropy_data(data, pos, restart_interval)


def _skip_entropy_data(data: bytes, pos: int, restart_interval: int) -> int:
    """Return the offset of the marker that ends the scan starting at ``pos``."""
    expected_rst = 0
    while True:
        found = data.find(b"\xff", pos)
        if found < 0 or found + 1 >= len(data):
            raise ImageError(IMAGE_CORRUPT, "JPEG truncated inside scan data")
        following = data[found + 1]
        if following == 0x00:  # stuffed 0xFF data byte
            pos = found + 2
        elif 0xD0 <= following <= 0xD7:
            if not restart_interval or following != 0xD0 + expected_rst:
                raise ImageError(IMAGE_CORRUPT, f"JPEG: restart marker out of sequence at byte {found}")
            expected_rst = (expected_rst + 1) % 8
            pos = found + 2
        elif following == 0xFF:  # fill byte before the next marker
            pos = found + 1
        else:
            return found
