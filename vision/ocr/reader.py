"""Read any document: an image (path, bytes, URL, Frame) or a PDF, with preprocessing and page numbers.

``read()`` is the one entry point the CLI, the documents and the apps use:

* PDFs: each page's own text layer when it has one, else the page rendered at ``dpi`` and OCR'd;
  pages are streamed, so memory stays that of one page; a page that fails is reported in
  ``warnings`` and the others are kept;
* very tall images (a 20000-px receipt scan) are read in overlapping strips, so no engine has to
  shrink the text away;
* boxes always refer to the original image (or page), whatever the preprocessing did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import MissingExtraError, OcrError, VisionError
from ..frame import Frame, ImageInput
from .engines import get_engine
from .preprocess import Preprocess, prepare
from .result import OcrResult, OcrWord

log = logging.getLogger(__name__)

KIND_PSM = {"receipt": 6, "nutrition": 6, "supplement": 6, "generic": 3}
STRIP_RATIO = 2.5  # strips at most this many times as tall as they are wide
STRIP_OVERLAP = 0.06


def read(
    source: ImageInput | Frame,
    *,
    engine: str = "auto",
    lang: str = "eng",
    kind: str | None = None,
    psm: int | None = None,
    preprocess: Preprocess | None = None,
    dpi: int = 200,
    password: str | None = None,
    pages: range | list[int] | None = None,
) -> OcrResult:
    """OCR an image or every page of a PDF into one :class:`OcrResult` (words carry their page)."""
    result: OcrResult | None = None
    for page in read_pages(source, engine=engine, lang=lang, kind=kind, psm=psm, preprocess=preprocess, dpi=dpi,
                           password=password, pages=pages):
        result = page if result is None else result.merged_pages(page)
    assert result is not None
    return result


def read_pages(
    source: Any,
    *,
    engine: str = "auto",
    lang: str = "eng",
    kind: str | None = None,
    psm: int | None = None,
    preprocess: Preprocess | None = None,
    dpi: int = 200,
    password: str | None = None,
    pages: range | list[int] | None = None,
) -> Iterator[OcrResult]:
    """One :class:`OcrResult` per page (a single one for an image), as each is read."""
    psm = psm or KIND_PSM.get(kind or "")
    if _is_pdf_source(source):
        yield from _read_pdf(source, engine=engine, lang=lang, psm=psm, preprocess=preprocess, dpi=dpi,
                             password=password, pages=pages)
        return
    frame = source if isinstance(source, Frame) else Frame.load(source)
    yield read_frame(frame, engine=engine, lang=lang, psm=psm, preprocess=preprocess)


def read_frame(frame: Frame, *, engine: str = "auto", lang: str = "eng", psm: int | None = None,
               preprocess: Preprocess | None = None, page: int = 0) -> OcrResult:
    """OCR one image: preprocessed, in strips when very tall, boxes in the image's coordinates."""
    start = time.perf_counter()
    ocr = get_engine(engine)
    if preprocess is None:
        preprocess = Preprocess(upscale=getattr(ocr, "upscale_small_text", True))
    results = []
    for top, strip in _strips(frame):
        prepared = prepare(strip, preprocess)
        raw = ocr.read(prepared.frame, lang=lang, psm=psm)
        words = [replace(w, box=_shift(prepared.to_original(w.box), top), page=page) for w in raw.words]
        results.append((top, strip.height, words, raw))
    words = _merge_strips(results, frame.height)
    first = results[0][3]
    result = OcrResult(tuple(words), first.engine, first.language, frame.size, time.perf_counter() - start)
    if not result.words:
        result = replace(result, warnings=("no text found",))
    return result


def _shift(box: tuple[int, int, int, int], dy: int) -> tuple[int, int, int, int]:
    return box[0], box[1] + dy, box[2], box[3] + dy


def _strips(frame: Frame) -> Iterator[tuple[int, Frame]]:
    max_h = int(frame.width * STRIP_RATIO)
    if frame.height <= max_h * 1.2:
        yield 0, frame
        return
    step = int(max_h * (1 - STRIP_OVERLAP))
    top = 0
    while True:
        bottom = min(frame.height, top + max_h)
        yield top, frame.crop((0, top, frame.width, bottom))
        if bottom >= frame.height:
            return
        top += step


def _merge_strips(results: list[tuple[int, int, list[OcrWord], OcrResult]], height: int) -> list[OcrWord]:
    """Words of overlapping strips, each overlap read once (from the strip where it is further from the edge),
    with line numbers renumbered so they stay unique and in order."""
    out: list[OcrWord] = []
    line_offset = 0
    for i, (top, h, words, _raw) in enumerate(results):
        lo = top if i == 0 else (top + results[i - 1][0] + results[i - 1][1]) / 2
        hi = height if i == len(results) - 1 else (results[i + 1][0] + top + h) / 2
        kept = [w for w in words if lo <= (w.box[1] + w.box[3]) / 2 < hi]
        lines = sorted({w.line for w in kept})
        renumber = {old: line_offset + n for n, old in enumerate(lines)}
        out += [replace(w, line=renumber[w.line]) for w in kept]
        line_offset += len(lines)
    return out


def _is_pdf_source(source: Any) -> bool:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source[:5]) == b"%PDF-"
    if isinstance(source, (str, Path)) and not str(source).startswith(("http://", "https://", "data:")):
        p = Path(source)
        if p.suffix.lower() == ".pdf":
            return True
        try:
            with open(p, "rb") as fh:
                return fh.read(5) == b"%PDF-"
        except OSError:
            return False
    return False


def _read_pdf(source: Any, *, engine: str, lang: str, psm: int | None, preprocess: Preprocess | None, dpi: int,
              password: str | None, pages: range | list[int] | None) -> Iterator[OcrResult]:
    from .pdf import iter_pages

    for page in iter_pages(source, dpi=dpi, password=password, pages=pages):
        if page.text_layer is not None:
            yield page.text_layer
            continue
        try:
            yield read_frame(page.render(), engine=engine, lang=lang, psm=psm, preprocess=preprocess,
                             page=page.index)
        except (OcrError, MissingExtraError):
            raise
        except VisionError as exc:
            log.warning("page %d of %s could not be read: %s", page.index + 1, source, exc)
            yield OcrResult((), engine, lang, page.size, warnings=(f"page {page.index + 1}: {exc}",))
