"""What every extracted document shares: fields with evidence, checks, and the transcription.

A document is a pydantic model, so it prints as JSON, validates an edited JSON file the person
corrected (step 1 of the explain flow), and serialises money as decimal strings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from ..ocr.result import OcrResult

LOW_CONFIDENCE = 0.6


class Evidence(BaseModel):
    """Where a value came from: the OCR line(s) it was read from."""

    model_config = ConfigDict(frozen=True)

    text: str
    line: int
    page: int = 0
    box: tuple[int, int, int, int] | None = None
    confidence: float | None = None


class Check(BaseModel):
    """A consistency check: ``passed`` is None when there was not enough to check."""

    name: str
    passed: bool | None
    detail: str
    expected: str | None = None
    found: str | None = None


class FlaggedWord(BaseModel):
    text: str
    confidence: float
    line: int
    page: int = 0


class Document(BaseModel):
    """Base of every extracted document."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    kind: str
    transcription: str = ""
    checks: list[Check] = Field(default_factory=list)
    evidence: dict[str, list[Evidence]] = Field(default_factory=dict)
    low_confidence: list[FlaggedWord] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    source: str | None = None
    engine: str | None = None
    _ocr: OcrResult | None = PrivateAttr(default=None)

    @property
    def ocr(self) -> OcrResult | None:
        """The OCR result the document was parsed from (words and boxes, for overlays); not serialised,
        so ``None`` for a document loaded from JSON."""
        return self._ocr

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if c.passed is False]

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def recheck(self) -> Document:
        """Run the checks again (after the person corrected fields)."""
        self.checks = self.run_checks()
        return self

    def run_checks(self) -> list[Check]:  # pragma: no cover - overridden
        return []

    def finish(self, source: object, evidence: dict[str, list[Evidence]]) -> None:
        """Record the evidence and, for OCR input, the engine, its warnings and the words it doubted;
        then run the checks."""
        self.evidence = evidence
        if isinstance(source, OcrResult):
            self._ocr = source
            self.low_confidence = flagged_words(source)
            self.engine = source.engine
            self.warnings = [*source.warnings, *self.warnings]
        self.checks = self.run_checks()


@dataclass(frozen=True)
class Line:
    """One OCR line as the parsers see it."""

    text: str
    index: int
    page: int = 0
    box: tuple[int, int, int, int] | None = None
    confidence: float | None = None

    def evidence(self) -> Evidence:
        return Evidence(text=self.text, line=self.index, page=self.page, box=self.box, confidence=self.confidence)


def lines_of(source: OcrResult | str | Sequence[str]) -> list[Line]:
    """OCR lines (or plain text, for tests and pasted transcriptions) as :class:`Line` objects."""
    if isinstance(source, OcrResult):
        return [Line(ln.text, i, ln.page, ln.box, ln.confidence) for i, ln in enumerate(source.lines)]
    texts = source.splitlines() if isinstance(source, str) else list(source)
    return [Line(t, i) for i, t in enumerate(t for t in texts if t.strip())]


def flagged_words(result: OcrResult | None, threshold: float = LOW_CONFIDENCE) -> list[FlaggedWord]:
    if result is None:
        return []
    return [FlaggedWord(text=w.text, confidence=round(w.confidence, 3), line=w.line, page=w.page)
            for w in result.words if w.confidence < threshold]


# --- numbers as printed ------------------------------------------------------------------------

_OCR_DIGITS = str.maketrans({"O": "0", "o": "0", "D": "0", "Q": "0", "l": "1", "I": "1", "|": "1", "i": "1",
                             "S": "5", "s": "5", "B": "8", "Z": "2", "z": "2"})

AMOUNT_RE = re.compile(
    r"""(?<![\w./-])
    (?P<neg>-)?
    (?P<cur>RM|MYR|S\$|US\$|\$|£|€|GBP|EUR|USD|SGD|Rp|IDR)?\s?
    (?P<num>\d{1,3}(?:[,\s.]\d{3})+(?:[.,]\d{2})|\d+\s?[.,]\s?\d{2}|(?<![\d,])[.,]\d{2})
    (?P<neg2>-)?
    (?![\d%])""",
    re.X,
)


def parse_amount(text: str) -> Decimal | None:
    """A money amount as printed (``12.50``, ``12,50``, ``1,234.56``, ``1.234,56``, ``RM 9.00``, ``12 . 50``)."""
    m = AMOUNT_RE.search(text)
    if not m:
        return None
    return _number(m.group("num"), negative=bool(m.group("neg") or m.group("neg2")))


def _number(raw: str, *, negative: bool = False) -> Decimal | None:
    s = re.sub(r"\s", "", raw)
    if s[:1] in ".,":  # ".40" printed without its leading zero
        s = "0" + s
    if re.fullmatch(r"\d{1,3}(?:[.,]\d{3})+[.,]\d{2}", s):
        s = re.sub(r"[.,]", "", s[:-3]) + "." + s[-2:]
    else:
        s = s.replace(",", ".")
    try:
        value = Decimal(s)
    except ArithmeticError:
        return None
    return -value if negative else value


def amounts_in(text: str) -> list[tuple[Decimal, str, int]]:
    """Every amount in ``text``: (value, as printed, position), left to right."""
    out = []
    for m in AMOUNT_RE.finditer(text):
        value = _number(m.group("num"), negative=bool(m.group("neg") or m.group("neg2")))
        if value is not None:
            out.append((value, m.group(0).strip(), m.start()))
    return out


def fix_digits(token: str) -> str:
    """OCR letter/digit confusions inside something that should be a number (``1O.5O`` -> ``10.50``)."""
    return token.translate(_OCR_DIGITS)


def normalise_spacing(text: str) -> str:
    """Dot-matrix spacing: ``1 5 . 0 0`` -> ``15.00``, ``12 . 50`` -> ``12.50``, ``T O T A L`` -> ``TOTAL``.

    Only runs of single characters are joined, so ``2 15.00`` (a quantity and an amount) stays apart.
    """
    text = re.sub(r"(?<!\S)(?:[\d.,] ){2,}[\d.,](?!\S)", lambda m: m.group(0).replace(" ", ""), text)
    text = re.sub(r"(\d) ?([.,]) ?(\d{2})(?![\d%])", r"\1\2\3", text)
    text = re.sub(r"(?<![\d.,])(\d+[.,]\d) (\d)(?![\d.,])", r"\1\2", text)  # "0.0 0" -> "0.00"
    return re.sub(r"(?<!\S)(?:[A-Za-z] ){2,}[A-Za-z](?!\S)", lambda m: m.group(0).replace(" ", ""), text)
