"""PDF pages: the PDF's own text layer where it has one, a rendered image for OCR where it does not.

Pages are yielded one at a time (rendered, read, dropped), so a 500-page PDF needs the memory of
one page. pypdfium2 comes with the ``ocr`` extra.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import DocumentError
from ..frame import Frame
from ..util import require
from .result import OcrResult, OcrWord, group_rows, split_words

log = logging.getLogger(__name__)

MIN_TEXT_LAYER_CHARS = 20  # fewer printable characters than this: treat the page as a scan


@dataclass
class PdfPage:
    index: int  # 0-based
    count: int
    size: tuple[int, int]  # pixels at the chosen dpi
    text_layer: OcrResult | None
    _render: object

    def render(self) -> Frame:
        """The page as an image at the chosen dpi."""
        return self._render()  # type: ignore[operator,no-any-return]


def is_pdf(data: bytes) -> bool:
    return data[:5] == b"%PDF-" or b"%PDF-" in data[:1024]


def iter_pages(source: str | Path | bytes, *, dpi: int = 200, password: str | None = None,
               pages: range | list[int] | None = None) -> Iterator[PdfPage]:
    """Each page with its text layer (if any) and a renderer, in order."""
    pdfium = require("pypdfium2", extra="ocr", feature="reading PDFs", package="pypdfium2")
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        pdf = pdfium.PdfDocument(source if isinstance(source, (bytes, bytearray)) else str(source),
                                 password=password)
    except pdfium.PdfiumError as exc:
        reason = str(exc)
        if "password" in reason.lower():
            hint = "it is encrypted: give its password (--password)" if not password else "the password is wrong"
            raise DocumentError(f"{name}: cannot open the PDF: {hint}") from exc
        raise DocumentError(f"{name}: not a readable PDF ({reason})") from exc
    try:
        count = len(pdf)
        if count == 0:
            raise DocumentError(f"{name}: the PDF has no pages")
        wanted = list(pages) if pages is not None else range(count)
        scale = dpi / 72.0
        for index in wanted:
            if not 0 <= index < count:
                raise DocumentError(f"{name}: there is no page {index + 1} (the PDF has {count})")
            page = pdf[index]
            try:
                width_pt, height_pt = page.get_size()
                size = (max(1, round(width_pt * scale)), max(1, round(height_pt * scale)))
                layer = _text_layer(page, index, scale, height_pt, size)

                def render(page: object = page, number: int = index + 1) -> Frame:
                    bitmap = page.render(scale=scale)  # type: ignore[attr-defined]
                    return Frame.from_pil(bitmap.to_pil(), source=f"{name}#page={number}")

                yield PdfPage(index, count, size, layer, render)
            finally:
                page.close()
    finally:
        pdf.close()


def _text_layer(page: object, index: int, scale: float, height_pt: float, size: tuple[int, int]) -> OcrResult | None:
    """The page's own text as an OcrResult (confidence 1), or None for a scanned page."""
    textpage = page.get_textpage()  # type: ignore[attr-defined]
    try:
        text = textpage.get_text_range()
        if sum(ch.isalnum() for ch in text) < MIN_TEXT_LAYER_CHARS:
            return None
        runs = []
        for i in range(textpage.count_rects()):
            left, bottom, right, top = textpage.get_rect(i)
            run = textpage.get_text_bounded(left, bottom, right, top).strip()
            if run:
                box = (int(left * scale), int((height_pt - top) * scale), int(right * scale),
                       int((height_pt - bottom) * scale))
                runs.append((box, " ".join(run.split())))
    finally:
        textpage.close()
    words: list[OcrWord] = []
    boxes = [b for b, _ in runs]
    for line_idx, row in enumerate(group_rows(boxes)):
        for i in sorted(row, key=lambda k: boxes[k][0]):
            words.extend(split_words(runs[i][1], boxes[i], 1.0, line_idx, index))
    return OcrResult(tuple(words), "pdf-text", "", size)
