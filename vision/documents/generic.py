"""Any other label or document: key-value pairs and tables, plus ``auto`` kind detection."""

from __future__ import annotations

import itertools
import re
from typing import Literal

from pydantic import BaseModel, Field

from ..ocr.result import OcrResult
from .base import Check, Document, Evidence, lines_of


class KeyValue(BaseModel):
    key: str
    value: str
    line: int


class Table(BaseModel):
    rows: list[list[str]]
    first_line: int


class GenericDocument(Document):
    kind: Literal["generic"] = "generic"
    title: str | None = None
    fields: list[KeyValue] = Field(default_factory=list)
    tables: list[Table] = Field(default_factory=list)

    def run_checks(self) -> list[Check]:
        return []


_KV = re.compile(r"^\s*(?P<key>[A-Za-z][\w .,/()#&'-]{1,40}?)\s*[:=]\s*(?P<value>\S.*)$")


def _cells(words: list[tuple[str, tuple[int, int, int, int]]]) -> list[str]:
    """Split a line's words into cells where the gap between words is much wider than a space."""
    if not words:
        return []
    heights = sorted(b[3] - b[1] for _, b in words)
    gap = max(8, heights[len(heights) // 2])
    cells, cur = [], [words[0][0]]
    for (_, prev), (text, box) in itertools.pairwise(words):
        if box[0] - prev[2] > gap:
            cells.append(" ".join(cur))
            cur = []
        cur.append(text)
    cells.append(" ".join(cur))
    return cells


def parse_generic(source: OcrResult | str | list[str]) -> GenericDocument:
    """Key-value pairs ("Batch: 2231A") and tables (lines that split into the same number of cells)."""
    lines = lines_of(source)
    doc = GenericDocument(transcription="\n".join(ln.text for ln in lines))
    evidence: dict[str, list[Evidence]] = {}
    for ln in lines:
        m = _KV.match(ln.text)
        if m:
            doc.fields.append(KeyValue(key=m.group("key").strip(), value=m.group("value").strip(), line=ln.index))
            evidence.setdefault(m.group("key").strip(), []).append(ln.evidence())
    if isinstance(source, OcrResult):
        by_line = source.lines
        if by_line:
            tallest = max(by_line, key=lambda ln: max(w.height for w in ln.words))
            doc.title = tallest.text
        run: list[list[str]] = []
        start = 0
        for i, ln in enumerate([*by_line, None]):  # type: ignore[operator]
            cells = _cells([(w.text, w.box) for w in ln.words]) if ln is not None else []
            if len(cells) >= 2 and (not run or len(cells) == len(run[-1])):
                if not run:
                    start = i
                run.append(cells)
                continue
            if len(run) >= 3:
                doc.tables.append(Table(rows=run, first_line=start))
            run = [cells] if len(cells) >= 2 else []
            start = i
    elif lines:
        doc.title = lines[0].text
    doc.finish(source, evidence)
    return doc


_NUTRITION_WORDS = ("nutrition facts", "supplement facts", "serving size", "servings per", "daily value", "calories",
                    "total fat", "saturated", "sodium", "carbohydrate", "protein", "per 100", "energy", "of which",
                    "ingredients", "kcal")
_RECEIPT_WORDS = ("total", "subtotal", "sub total", "cash", "change", "tax", "gst", "vat", "receipt", "invoice",
                  "qty", "amount", "rounding", "cashier", "tel", "thank you", "paid", "visa", "balance")


def detect_kind(source: OcrResult | str) -> str:
    """``receipt``, ``nutrition`` or ``generic``, from the words and the number of money amounts."""
    text = (source.text if isinstance(source, OcrResult) else source).lower()
    nutrition = sum(text.count(w) for w in _NUTRITION_WORDS)
    money = len(re.findall(r"(?<![\d.])\d+[.,]\d{2}(?![\d%])", text))
    receipt = sum(text.count(w) for w in _RECEIPT_WORDS) + money / 3
    if "nutrition facts" in text or "supplement facts" in text or (nutrition >= 4 and nutrition > receipt):
        return "nutrition"
    if receipt >= 3 and money >= 2:
        return "receipt"
    return "generic"
