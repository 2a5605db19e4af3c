"""Image intake: every supported format and mode, EXIF, limits, URLs, and every bad input."""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vision.errors import (
    ImageDownloadError,
    ImageError,
    ImageTooLargeError,
    UnsupportedImageError,
    VisionError,
)
from vision.frame import Frame, ImageLimits, sniff_format
from vision.testing.http import HttpServer, Request, Response, Router

from .conftest import jpeg_bytes


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    bio = io.BytesIO()
    img.save(bio, format=fmt, **kw)
    return bio.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a tiny (invalid) body: enough to be refused early."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


RGB = Image.fromarray(np.dstack([np.full((60, 80), v, np.uint8) for v in (200, 100, 50)]))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_every_supported_format_decodes_to_rgb(fmt: str) -> None:
    frame = Frame.from_bytes(_encode(RGB, fmt), source=f"x.{fmt.lower()}")
    assert frame.size == (80, 60)
    assert frame.pixels.dtype == np.uint8 and frame.pixels.shape == (60, 80, 3)
    assert sniff_format(_encode(RGB, fmt)) == fmt
    r, g, b = frame.pixels[30, 40].astype(int)
    assert r > g > b  # colour order kept (no BGR swap), within codec/palette error


def test_avif_decodes() -> None:
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow build has no AVIF codec")
    frame = Frame.from_bytes(_encode(RGB, "AVIF"))
    assert frame.size == (80, 60)


def test_heic_through_optional_plugin() -> None:
    pillow_heif = pytest.importorskip("pillow_heif", reason="the 'heif' extra (pillow-heif) is not installed")
    pillow_heif.register_heif_opener()
    data = _encode(RGB, "HEIF")
    assert sniff_format(data) == "HEIF"
    frame = Frame.from_bytes(data)
    assert frame.size == (80, 60)


def test_gif_first_frame_only() -> None:
    frames = [Image.new("RGB", (40, 30), c) for c in ("red", "blue")]
    bio = io.BytesIO()
    frames[0].save(bio, format="GIF", save_all=True, append_images=frames[1:])
    frame = Frame.from_bytes(bio.getvalue())
    r, _, b = frame.pixels[15, 20].astype(int)
    assert r > 200 and b < 50


def test_exif_orientation_applied() -> None:
    frame = Frame.from_bytes(jpeg_bytes(640, 480, exif_orientation=6))
    assert frame.size == (480, 640)
    assert frame.original_size == (480, 640)


def test_exif_orientation_with_reduced_decoding() -> None:
    frame = Frame.from_bytes(jpeg_bytes(2000, 1000, exif_orientation=6), max_side=500)
    assert frame.size == (250, 500)
    assert frame.original_size == (1000, 2000)


@pytest.mark.parametrize(
    ("mode", "expect"),
    [
        ("CMYK", None),
        ("L", None),
        ("1", None),
        ("I;16", None),
        ("P", None),
    ],
)
def test_modes_normalised(mode: str, expect: object) -> None:
    if mode == "I;16":
        arr = np.full((20, 30), 65535 // 2, np.uint16)
        img = Image.fromarray(arr)
        assert img.mode.startswith("I;16")
        data = _encode(img, "PNG")
    elif mode == "CMYK":
        data = _encode(RGB.convert("CMYK"), "JPEG")
    else:
        data = _encode(RGB.convert(mode), "PNG")
    frame = Frame.from_bytes(data)
    assert frame.pixels.shape[2] == 3 and frame.pixels.dtype == np.uint8
    if mode == "I;16":
        assert 120 <= int(frame.pixels[0, 0, 0]) <= 135  # half of 16-bit full scale -> about 127


def _transparent(mode: str) -> Image.Image:
    if mode == "P":
        img = Image.new("P", (20, 20), 0)
        img.putpalette([255, 0, 0, 0, 0, 0] + [0] * 762)  # index 0 red, index 1 black
        img.putpixel((0, 0), 1)
        img.info["transparency"] = 0
        return img
    img = Image.new("RGBA", (20, 20), (255, 0, 0, 0))  # fully transparent red
    img.putpixel((0, 0), (0, 0, 0, 255))
    return img.convert(mode)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_composited_over_white(mode: str) -> None:
    frame = Frame.from_bytes(_encode(_transparent(mode), "PNG"))
    assert tuple(frame.pixels[10, 10]) == (255, 255, 255)
    assert tuple(frame.pixels[0, 0]) == (0, 0, 0)


def test_reduced_decoding_keeps_original_size() -> None:
    frame = Frame.from_bytes(jpeg_bytes(4032, 3024), max_side=1000)
    assert max(frame.size) == 1000
    assert frame.original_size == (4032, 3024)


def test_from_array_bgr_and_rgb() -> None:
    bgr = np.zeros((10, 10, 3), np.uint8)
    bgr[..., 0] = 255  # blue in BGR
    assert tuple(Frame.from_bgr(bgr).pixels[0, 0]) == (0, 0, 255)
    assert tuple(Frame.from_array(bgr).pixels[0, 0]) == (255, 0, 0)
    gray16 = np.full((4, 4), 65535, np.uint16)
    assert Frame.from_array(gray16).pixels.max() == 255
    floats = np.ones((4, 4, 4), np.float32)
    assert Frame.from_array(floats).pixels.shape == (4, 4, 3)
    with pytest.raises(ValueError, match="shape"):
        Frame.from_array(np.zeros((4,), np.uint8))


def test_load_dispatch(tmp_path: Path) -> None:
    p = tmp_path / "a.png"
    p.write_bytes(_encode(RGB, "PNG"))
    for src in (p, str(p), p.read_bytes(), RGB, np.asarray(RGB)):
        assert Frame.load(src).size == (80, 60)
    with open(p, "rb") as fh:
        assert Frame.load(fh).size == (80, 60)
    with pytest.raises(TypeError):
        Frame.load(3.5)  # type: ignore[arg-type]


def test_save_is_atomic_and_roundtrips(tmp_path: Path) -> None:
    frame = Frame.from_pil(RGB)
    out = frame.save(tmp_path / "sub" / "x.png")
    assert Frame.from_path(out).size == (80, 60)
    assert not list((tmp_path / "sub").glob("*.part"))
    with pytest.raises(ValueError, match="cannot save"):
        frame.save(tmp_path / "x.xyz")


def test_jpeg_strips_exif_gps() -> None:
    exif = Image.Exif()
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPSLatitude
    data = _encode(RGB, "JPEG", exif=exif.tobytes())
    assert b"Exif" in data
    assert b"Exif" not in Frame.from_bytes(data).to_jpeg()


# --- bad input ---------------------------------------------------------------------------------


def test_zero_byte_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(UnsupportedImageError, match="empty file"):
        Frame.from_path(p)


def test_text_file_named_jpg(tmp_path: Path) -> None:
    p = tmp_path / "notes.jpg"
    p.write_text("shopping list: eggs, milk\n")
    with pytest.raises(UnsupportedImageError, match="not an image: the data is text"):
        Frame.from_path(p)


def test_truncated_jpeg(tmp_path: Path) -> None:
    p = tmp_path / "cut.jpg"
    p.write_bytes(jpeg_bytes(800, 600)[:3000])
    with pytest.raises(UnsupportedImageError, match="truncated"):
        Frame.from_path(p)


@pytest.mark.parametrize(("w", "h"), [(10_000, 10_000), (30_000, 30_000)])
def test_decompression_bomb_refused_before_decoding(w: int, h: int) -> None:
    with pytest.raises(ImageTooLargeError, match=r"MP|decompression"):
        Frame.from_bytes(_png_header_only(w, h))


def test_extreme_aspect_ratio_refused() -> None:
    with pytest.raises(ImageTooLargeError, match=r"too small|aspect"):
        Frame.from_bytes(_png_header_only(100_000, 1))


def test_tall_receipt_scan_accepted() -> None:
    img = Image.new("L", (800, 20_000), 255)
    frame = Frame.from_bytes(_encode(img, "PNG"))
    assert frame.size == (800, 20_000)


def test_byte_cap(tmp_path: Path) -> None:
    p = tmp_path / "big.jpg"
    p.write_bytes(jpeg_bytes(200, 200))
    with pytest.raises(ImageTooLargeError, match="MB"):
        Frame.from_path(p, limits=ImageLimits(max_bytes=100))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such file"):
        Frame.from_path(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="directory"):
        Frame.from_path(tmp_path)


def test_pdf_is_pointed_elsewhere() -> None:
    with pytest.raises(UnsupportedImageError, match="PDF"):
        Frame.from_bytes(b"%PDF-1.7\n...")


def test_errors_are_vision_errors() -> None:
    assert issubclass(ImageTooLargeError, ImageError) and issubclass(ImageError, VisionError)


# --- URLs ----------------------------------------------------------------------------------------


@pytest.fixture
def web() -> Iterator[str]:
    router = Router()
    png = _encode(RGB, "PNG")
    router.add("GET", "/photo.png", lambda r: Response(200, png, content_type="image/png"))
    router.add("GET", "/page", lambda r: Response(200, "<!doctype html><html>hi</html>",
                                                  content_type="text/html; charset=utf-8"))
    router.add("GET", "/disguised", lambda r: Response(200, b"<html><body>x</body></html>", content_type="image/png"))
    router.add("GET", "/missing", lambda r: Response(404, "not found"))
    router.add("GET", "/big", lambda r: Response(200, b"\xff\xd8\xff" + b"0" * 5000, content_type="image/jpeg"))

    def slow(_r: Request) -> Response:
        time.sleep(3)
        return Response(200, png, content_type="image/png")

    router.add("GET", "/slow", slow)
    router.add("GET", "/redirect", lambda r: Response(302, b"", headers={"Location": "/photo.png"}))
    server = HttpServer(router)
    server.start()
    yield server.url
    server.stop()


def test_url_image(web: str) -> None:
    assert Frame.from_url(f"{web}/photo.png").size == (80, 60)
    assert Frame.load(f"{web}/redirect").size == (80, 60)


def test_url_returning_html(web: str) -> None:
    with pytest.raises(ImageDownloadError, match="text/html, not an image"):
        Frame.from_url(f"{web}/page")
    with pytest.raises(UnsupportedImageError, match="HTML"):
        Frame.from_url(f"{web}/disguised")


def test_url_status_and_size_cap(web: str) -> None:
    with pytest.raises(ImageDownloadError, match="404"):
        Frame.from_url(f"{web}/missing")
    with pytest.raises(ImageTooLargeError, match="limit"):
        Frame.from_url(f"{web}/big", limits=ImageLimits(url_max_bytes=1000))


def test_url_that_never_answers(web: str) -> None:
    start = time.monotonic()
    with pytest.raises(ImageDownloadError, match="no answer within"):
        Frame.from_url(f"{web}/slow", limits=ImageLimits(url_timeout=0.5))
    assert time.monotonic() - start < 2.5


@pytest.mark.parametrize("url", ["ftp://example.com/a.jpg", "file:///etc/passwd", "gopher://x/1"])
def test_url_scheme_must_be_http(url: str) -> None:
    with pytest.raises(ImageDownloadError, match="only http and https"):
        Frame.from_url(url)


def test_data_url() -> None:
    import base64

    url = "data:image/png;base64," + base64.b64encode(_encode(RGB, "PNG")).decode()
    assert Frame.load(url).size == (80, 60)
