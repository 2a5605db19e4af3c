"""The image with every word's box, coloured by confidence, for checking what OCR read."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from ..frame import Frame
from ..util import atomic_write_bytes
from .result import OcrResult

LOW_CONFIDENCE = 0.6


def _colour(conf: float) -> tuple[int, int, int]:
    """Red (0) through orange to green (1)."""
    c = max(0.0, min(1.0, conf))
    if c < 0.5:
        return 220, int(60 + 300 * c), 40
    return int(220 - 380 * (c - 0.5)), 190, 60


def draw_overlay(frame: Frame, result: OcrResult, *, low: float = LOW_CONFIDENCE,
                 page: int | None = None) -> Image.Image:
    """Boxes coloured by confidence; words below ``low`` are also shaded, so they stand out."""
    base = frame.to_pil().convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    width = max(1, round(max(base.size) / 600))
    for word in result.words:
        if page is not None and word.page != page:
            continue
        colour = _colour(word.confidence)
        if word.confidence < low:
            draw.rectangle(word.box, fill=(*colour, 70))
        draw.rectangle(word.box, outline=(*colour, 255), width=width)
    return Image.alpha_composite(base, layer).convert("RGB")


def save_overlay(frame: Frame, result: OcrResult, path: str | Path, *, low: float = LOW_CONFIDENCE,
                 page: int | None = None) -> Path:
    """Write the overlay as PNG (atomically)."""
    import io

    bio = io.BytesIO()
    draw_overlay(frame, result, low=low, page=page).save(bio, format="PNG")
    return atomic_write_bytes(path, bio.getvalue())


def page_overlays(source: Any, result: OcrResult, *, dpi: int = 200, password: str | None = None,
                  low: float = LOW_CONFIDENCE, max_pages: int | None = None) -> list[Image.Image]:
    """The overlay of each page of ``source`` as :func:`~vision.ocr.read` read it: one for an image, one
    per page for a PDF (rendered at the same ``dpi``), at most ``max_pages``."""
    from .reader import _is_pdf_source

    if not _is_pdf_source(source):
        frame = source if isinstance(source, Frame) else Frame.load(source)
        return [draw_overlay(frame, result, low=low)]
    from .pdf import iter_pages

    out = []
    with closing(iter_pages(source, dpi=dpi, password=password)) as pages:
        for page in pages:
            if max_pages is not None and page.index >= max_pages:
                break
            out.append(draw_overlay(page.render(), result, low=low, page=page.index))
    return out
