"""decode_image: every bad input gets its reason code; every good one becomes HxWx3 uint8 RGB."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from mugpos.models.imaging import ImageError, decode_image, sniff_format

MAX_PIXELS = 40_000_000


# -- builders ----------------------------------------------------------------------------------


def photo(width: int = 160, height: int = 120, seed: int = 0) -> np.ndarray:
    """A smooth, photo-like RGB array (noise compresses badly, so JPEG scans are long)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / width, yy * 255 / height, (xx + yy) * 127 / (width + height)], axis=-1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(width: int = 320, height: int = 240, **options: object) -> bytes:
    return encode(Image.fromarray(photo(width, height)), "JPEG", quality=90, **options)


def png(image: Image.Image | None = None) -> bytes:
    return encode(image if image is not None else Image.fromarray(photo()), "PNG")


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_with_size(data: bytes, width: int, height: int) -> bytes:
    """Patch the IHDR of a real PNG to claim another size, with a valid CRC (a header-only bomb)."""
    ihdr_payload = struct.pack(">II", width, height) + data[24:29]
    return data[:8] + png_chunk(b"IHDR", ihdr_payload) + data[33:]


def bilevel_png_bomb(side: int = 30_000) -> bytes:
    """A genuine, valid 1-bit PNG of side x side black pixels: ~110 MB of rows deflated to ~100 KB."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    deflate = zlib.compressobj(9)
    rows = row * 1000
    idat = b"".join(deflate.compress(rows) for _ in range(side // 1000)) + deflate.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    """Patch the baseline frame header (SOF0) of a real JPEG to claim another size."""
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9 :]


def scan_middle(data: bytes) -> int:
    """An offset in the middle of the entropy-coded scan data."""
    sos = data.index(b"\xff\xda")
    return (sos + len(data)) // 2


def with_bytes_at(data: bytes, offset: int, replacement: bytes) -> bytes:
    return data[:offset] + replacement + data[offset + len(replacement) :]


def png_flip_idat_byte() -> bytes:
    data = png()
    idat = data.index(b"IDAT")
    return with_bytes_at(data, idat + 40, bytes([data[idat + 40] ^ 0x5A]))


def png_bad_ihdr_crc() -> bytes:
    data = png()
    return with_bytes_at(data, 29, b"\x00\x00\x00\x00")


def jpeg_bad_segment_length() -> bytes:
    data = jpeg()
    dqt = data.index(b"\xff\xdb")
    return with_bytes_at(data, dqt + 2, b"\xff\xf0")


def jpeg_stray_marker_mid_scan() -> bytes:
    data = jpeg()
    return with_bytes_at(data, scan_middle(data), b"\xff\x37\x12\x9a")


def jpeg_spliced_with_other_file() -> bytes:
    """Half a JPEG followed by the second half of a different one (a botched multipart upload)."""
    first, second = jpeg(), encode(Image.fromarray(photo(200, 300, seed=5)), "JPEG", quality=70)
    return first[: len(first) // 2] + second[len(second) // 2 :]


# -- bad inputs --------------------------------------------------------------------------------

BAD_INPUTS: list[tuple[str, Callable[[], bytes], str]] = [
    ("empty_bytes", lambda: b"", "empty_object"),
    ("text_bytes", lambda: b"hello, this is a text file, not a picture\n" * 3, "not_an_image"),
    ("json_bytes", lambda: b'{"image": "mug.jpg"}', "not_an_image"),
    ("pdf_header", lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "not_an_image"),
    ("jpeg_signature_only", lambda: b"\xff\xd8\xff", "image_corrupt"),
    ("png_signature_only", lambda: b"\x89PNG\r\n\x1a\n", "image_corrupt"),
    ("truncated_jpeg", lambda: jpeg()[: len(jpeg()) // 2], "image_corrupt"),
    ("truncated_jpeg_missing_eoi", lambda: jpeg()[:-2], "image_corrupt"),
    (
        "truncated_progressive_jpeg",
        lambda: jpeg(progressive=True)[: len(jpeg(progressive=True)) * 2 // 3],
        "image_corrupt",
    ),
    ("truncated_png", lambda: png()[: len(png()) // 2], "image_corrupt"),
    ("truncated_png_missing_iend", lambda: png()[:-12], "image_corrupt"),
    ("corrupt_jpeg_stray_marker_mid_scan", jpeg_stray_marker_mid_scan, "image_corrupt"),
    ("corrupt_jpeg_bad_segment_length", jpeg_bad_segment_length, "image_corrupt"),
    ("corrupt_png_idat_byte", png_flip_idat_byte, "image_corrupt"),
    ("corrupt_png_ihdr_crc", png_bad_ihdr_crc, "image_corrupt"),
    ("truncated_gif", lambda: encode(Image.fromarray(photo()), "GIF")[:-300], "image_corrupt"),
    ("png_header_claims_30000x30000", lambda: png_with_size(png(), 30_000, 30_000), "image_too_large"),
    ("png_bomb_1bit_30000x30000", bilevel_png_bomb, "image_too_large"),
    ("jpeg_header_claims_30000x30000", lambda: jpeg_with_size(jpeg(), 30_000, 30_000), "image_too_large"),
]


@pytest.mark.parametrize(("make", "reason"), [(m, r) for _, m, r in BAD_INPUTS], ids=[i for i, _, _ in BAD_INPUTS])
def test_bad_input_gets_its_reason(make: Callable[[], bytes], reason: str) -> None:
    with pytest.raises(ImageError) as caught:
        decode_image(make(), MAX_PIXELS)
    assert caught.value.reason == reason
    assert str(caught.value).startswith(reason)


def test_pixel_cap_is_checked_from_the_header_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """5000x5000 is under Pillow's own bomb limit: our cap must refuse it without decoding a pixel."""

    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    data = png_with_size(png(), 5000, 5000)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageError) as caught:
        decode_image(data, max_pixels=1_000_000)
    assert caught.value.reason == "image_too_large"
    assert "5000x5000" in str(caught.value)


def test_pixel_cap_allows_exactly_max_pixels() -> None:
    assert decode_image(jpeg(100, 50), max_pixels=5000).shape == (50, 100, 3)
    with pytest.raises(ImageError, match="image_too_large"):
        decode_image(jpeg(100, 50), max_pixels=4999)


def test_load_truncated_images_must_stay_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        decode_image(jpeg(), MAX_PIXELS)


def jpeg_zero_filled_mid_scan() -> bytes:
    data = jpeg()
    return with_bytes_at(data, scan_middle(data), bytes(200))


@pytest.mark.xfail(
    strict=True,
    reason="known limit: Pillow drops libjpeg's corrupt-data warnings and this damage keeps the marker "
    "structure valid; only a strict decoder (e.g. simplejpeg strict=True) catches it",
)
@pytest.mark.parametrize(
    "make", [jpeg_zero_filled_mid_scan, jpeg_spliced_with_other_file], ids=["zero_filled", "spliced"]
)
def test_entropy_data_damage_is_not_detected(make: Callable[[], bytes]) -> None:
    with pytest.raises(ImageError):
        decode_image(make(), MAX_PIXELS)


def test_image_error_rejects_unknown_reason() -> None:
    with pytest.raises(ValueError, match="unknown image error reason"):
        ImageError("bad_mood", "nope")


# -- good inputs -------------------------------------------------------------------------------


def rgba_with_transparent_corner() -> bytes:
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 255  # opaque red
    rgba[:10, :10, 3] = 0  # fully transparent corner
    return png(Image.fromarray(rgba, "RGBA"))


def sixteen_bit_grey() -> bytes:
    grey = np.zeros((30, 50), np.uint16)
    grey[:, 25:] = 65535
    grey[:, 10:25] = 32896  # 128 * 257
    return png(Image.fromarray(grey))


def palette_with_transparency() -> bytes:
    image = Image.fromarray(photo()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(image, "PNG", transparency=0)


GOOD_INPUTS: list[tuple[str, Callable[[], bytes], tuple[int, int]]] = [
    ("jpeg_baseline", lambda: jpeg(320, 240), (240, 320)),
    ("jpeg_progressive", lambda: jpeg(320, 240, progressive=True), (240, 320)),
    ("jpeg_restart_markers", lambda: jpeg(320, 240, restart_marker_blocks=3), (240, 320)),
    ("jpeg_greyscale_L", lambda: encode(Image.fromarray(photo()).convert("L"), "JPEG"), (120, 160)),
    ("jpeg_cmyk", lambda: encode(Image.fromarray(photo()).convert("CMYK"), "JPEG"), (120, 160)),
    ("jpeg_with_trailing_bytes", lambda: jpeg(320, 240) + b"motion-photo-trailer" * 10, (240, 320)),
    ("png_rgb", lambda: png(), (120, 160)),
    ("png_L", lambda: png(Image.fromarray(photo()).convert("L")), (120, 160)),
    ("png_LA", lambda: png(Image.fromarray(photo()).convert("LA")), (120, 160)),
    ("png_P", lambda: png(Image.fromarray(photo()).convert("P")), (120, 160)),
    ("png_P_transparency", palette_with_transparency, (120, 160)),
    ("png_RGBA", rgba_with_transparent_corner, (40, 60)),
    ("png_1bit", lambda: png(Image.fromarray(photo()).convert("1")), (120, 160)),
    ("png_16bit_grey", sixteen_bit_grey, (30, 50)),
    ("webp", lambda: encode(Image.fromarray(photo()), "WEBP"), (120, 160)),
    ("gif", lambda: encode(Image.fromarray(photo()), "GIF"), (120, 160)),
    ("bmp", lambda: encode(Image.fromarray(photo()), "BMP"), (120, 160)),
    ("tiff_cmyk", lambda: encode(Image.fromarray(photo()).convert("CMYK"), "TIFF"), (120, 160)),
]


@pytest.mark.parametrize(("make", "shape"), [(m, s) for _, m, s in GOOD_INPUTS], ids=[i for i, _, _ in GOOD_INPUTS])
def test_any_mode_decodes_to_rgb(make: Callable[[], bytes], shape: tuple[int, int]) -> None:
    array = decode_image(make(), MAX_PIXELS)
    assert array.shape == (*shape, 3)
    assert array.dtype == np.uint8
    assert array.flags["C_CONTIGUOUS"]


def test_png_pixels_are_exact() -> None:
    original = photo()
    assert np.array_equal(decode_image(png(Image.fromarray(original)), MAX_PIXELS), original)


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    array = decode_image(sixteen_bit_grey(), MAX_PIXELS)
    assert array[0, 0].tolist() == [0, 0, 0]
    assert array[0, 15].tolist() == [128, 128, 128]
    assert array[0, 40].tolist() == [255, 255, 255]


def test_transparency_is_composited_onto_white() -> None:
    array = decode_image(rgba_with_transparent_corner(), MAX_PIXELS)
    assert array[0, 0].tolist() == [255, 255, 255]
    assert array[30, 50].tolist() == [255, 0, 0]


@pytest.mark.parametrize(
    ("orientation", "corner"),
    [(1, "top_left"), (3, "bottom_right"), (6, "top_right"), (8, "bottom_left")],
    ids=["normal", "rotate_180", "rotate_90_cw", "rotate_90_ccw"],
)
def test_exif_orientation_is_applied(orientation: int, corner: str) -> None:
    """A 80x40 image, red block top-left as stored; the EXIF tag says how to show it."""
    stored = np.full((40, 80, 3), 255, np.uint8)
    stored[:15, :15] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes())
    array = decode_image(data, MAX_PIXELS)
    assert array.shape == ((40, 80, 3) if orientation in (1, 3) else (80, 40, 3))
    h, w = array.shape[:2]
    corners = {
        "top_left": array[2, 2],
        "top_right": array[2, w - 3],
        "bottom_left": array[h - 3, 2],
        "bottom_right": array[h - 3, w - 3],
    }
    for name, pixel in corners.items():
        is_red = pixel[0] > 200 and pixel[1] < 60 and pixel[2] < 60
        assert is_red == (name == corner), f"{name} {pixel.tolist()}"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xd8\xff\xe0", "JPEG"),
        (b"\x89PNG\r\n\x1a\n", "PNG"),
        (b"GIF89a", "GIF"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WEBP"),
        (b"hello", None),
        (b"", None),
    ],
    ids=["jpeg", "png", "gif", "webp", "text", "empty"],
)
def test_sniff_format(data: bytes, expected: str | None) -> None:
    assert sniff_format(data) == expected


def test_not_an_image_even_after_ultralytics_patched_pillow(no_network: None) -> None:
    """Importing ultralytics replaces PIL.Image.open with one that, on an unidentified file, tries to
    import (and, unless YOLO_AUTOINSTALL=0, pip-install) a HEIF plugin. A non-image stays a non-image."""
    import ultralytics.utils.patches  # applies the patch

    assert Image.open is not ultralytics.utils.patches._image_open
    with pytest.raises(ImageError) as caught:
        decode_image(b"definitely not an image", MAX_PIXELS)
    assert caught.value.reason == "not_an_image"


# -- fuzzing: only ImageError may escape the decoder ---------------------------------------------

_SEEDS = {
    "jpeg": jpeg(64, 48),
    "png": png(Image.fromarray(photo(48, 32))),
    "webp": encode(Image.fromarray(photo(48, 32)), "WEBP"),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=4096))
def test_fuzz_arbitrary_bytes_give_an_image_or_an_image_error(data: bytes) -> None:
    _decoded_or_documented(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(sorted(_SEEDS)),
    edits=st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=8)), min_size=1, max_size=6),
    cut=st.floats(0.05, 1.0),
)
def test_fuzz_damaged_real_images_give_an_image_or_an_image_error(
    kind: str, edits: list[tuple[float, bytes]], cut: float
) -> None:
    data = bytearray(_SEEDS[kind])
    for where, patch in edits:  # overwrite bytes anywhere, header included
        at = int(where * (len(data) - 1))
        data[at : at + len(patch)] = patch
    _decoded_or_documented(bytes(data[: max(1, int(len(data) * cut))]))


def _decoded_or_documented(data: bytes) -> None:
    try:
        image = decode_image(data, max_pixels=4_000_000)
    except ImageError as exc:
        assert exc.reason in ("empty_object", "not_an_image", "image_corrupt", "image_too_large")
        return
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
