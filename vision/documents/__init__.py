"""Labels and receipts turned into verified structure.

>>> from vision.documents import extract
>>> receipt = extract("assets/receipt.png", kind="receipt")
>>> str(receipt.total), receipt.date, [c.passed for c in receipt.checks]
('15.96', '2025-03-14', [True, True, True])
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import MissingExtraError, OcrError
from ..frame import Frame
from ..ocr.engines import available_engines
from ..ocr.reader import read
from ..ocr.result import OcrResult
from .base import Check, Document, Evidence, FlaggedWord
from .generic import GenericDocument, detect_kind, parse_generic
from .nutrition import NutritionLabel, parse_nutrition
from .receipt import LineItem, Receipt, TaxLine, parse_receipt

log = logging.getLogger(__name__)

KINDS = ("receipt", "nutrition", "generic", "auto")
PARSERS = {"receipt": parse_receipt, "nutrition": parse_nutrition, "generic": parse_generic}
DOCUMENT_TYPES: dict[str, type[Document]] = {"receipt": Receipt, "nutrition": NutritionLabel,
                                             "generic": GenericDocument}


def default_engine(kind: str) -> str:
    """The engine ``benchmarks/ocr_bench.py`` measured best for a kind, among those installed.

    Receipts: RapidOCR (it reads dot-matrix digits that Tesseract misses: the total right on 98%
    of the SROIE receipts against 74%); labels: Tesseract (every field of the label photos right).
    ``combined`` (RapidOCR's characters, Tesseract's spacing) reads a little better still, at the
    cost of running both.
    """
    have = available_engines()
    if kind == "receipt":
        return "rapidocr" if "rapidocr" in have else "auto"
    return "tesseract" if "tesseract" in have else "auto"


def extract(
    source: Any,
    *,
    kind: str = "auto",
    engine: str | None = None,
    lang: str = "eng",
    dpi: int = 200,
    password: str | None = None,
    ocr: OcrResult | None = None,
) -> Document:
    """Read ``source`` (image path, bytes, Frame, PDF) and parse it as ``kind`` (or detect the kind).

    Pass ``ocr`` to parse an OCR result you already have.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if ocr is None:
        first_kind = kind if kind != "auto" else "generic"
        ocr = read(source, engine=engine or default_engine(first_kind), lang=lang, kind=first_kind, dpi=dpi,
                   password=password)
        if kind == "auto":
            kind = detect_kind(ocr)
            better = engine or default_engine(kind)
            if better != ocr.engine and not (better == "auto" and ocr.engine == "tesseract"):
                try:
                    ocr = read(source, engine=better, lang=lang, kind=kind, dpi=dpi, password=password)
                except (OcrError, MissingExtraError) as exc:
                    log.info("keeping the first reading: %s", exc)
    elif kind == "auto":
        kind = detect_kind(ocr)
    doc = PARSERS[kind](ocr)
    doc.source = str(source) if isinstance(source, (str, Path)) else (
        source.source if isinstance(source, Frame) else None)
    return doc


def load_document(data: dict[str, Any]) -> Document:
    """A document from its JSON (as ``extract --json`` printed it, possibly corrected by hand),
    validated and re-checked."""
    kind = data.get("kind")
    if kind not in DOCUMENT_TYPES:
        raise ValueError(f"the JSON has no known 'kind' (receipt, nutrition or generic), got {kind!r}")
    doc = DOCUMENT_TYPES[kind].model_validate(data)
    return doc.recheck()


__all__ = [
    "KINDS", "Check", "Document", "Evidence", "FlaggedWord", "GenericDocument", "LineItem", "NutritionLabel",
    "Receipt", "TaxLine", "default_engine", "detect_kind", "extract", "load_document", "parse_generic",
    "parse_nutrition", "parse_receipt",
]
