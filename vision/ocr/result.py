"""`OcrResult`: words with boxes, confidence and line membership, in reading order.

One dataclass at the centre, adapters around it (``from_tesseract``, ``from_rapidocr``). An empty
result is a valid value; indexing and filtering return the same type.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, overload

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels of the image that was read


@dataclass(frozen=True)
class OcrWord:
    text: str
    box: Box
    confidence: float  # 0..1
    line: int = 0  # index of the line in the result, in reading order
    block: int = 0
    page: int = 0

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]


@dataclass(frozen=True)
class OcrLine:
    text: str
    box: Box
    confidence: float
    words: tuple[OcrWord, ...]
    index: int
    block: int = 0
    page: int = 0

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


def _union(boxes: Sequence[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


@dataclass(frozen=True)
class OcrResult:
    """What an OCR engine read from one image (or one page)."""

    words: tuple[OcrWord, ...] = ()
    engine: str = ""
    language: str = "eng"
    size: tuple[int, int] = (0, 0)  # (width, height) of the image that was read
    seconds: float = 0.0
    warnings: tuple[str, ...] = field(default=())

    # -- sequence behaviour ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.words)

    def __iter__(self) -> Iterator[OcrWord]:
        return iter(self.words)

    def __bool__(self) -> bool:
        return bool(self.words)

    @overload
    def __getitem__(self, index: int) -> OcrWord: ...
    @overload
    def __getitem__(self, index: slice) -> OcrResult: ...
    def __getitem__(self, index: int | slice) -> OcrWord | OcrResult:
        if isinstance(index, slice):
            return replace(self, words=self.words[index])
        return self.words[index]

    # -- views ----------------------------------------------------------------------------------

    @property
    def lines(self) -> list[OcrLine]:
        """Words grouped by line, in reading order."""
        groups: dict[tuple[int, int], list[OcrWord]] = {}
        for w in self.words:
            groups.setdefault((w.page, w.line), []).append(w)
        out = []
        for (page, index), words in sorted(groups.items()):
            words.sort(key=lambda w: w.box[0])
            conf = sum(w.confidence for w in words) / len(words)
            out.append(OcrLine(" ".join(w.text for w in words), _union([w.box for w in words]), conf,
                               tuple(words), index, words[0].block, page))
        return out

    @property
    def text(self) -> str:
        """The text, one line per OCR line, a blank line between blocks."""
        parts: list[str] = []
        prev: tuple[int, int] | None = None
        for line in self.lines:
            key = (line.page, line.block)
            if prev is not None and key != prev:
                parts.append("")
            parts.append(line.text)
            prev = key
        return "\n".join(parts)

    @property
    def confidence(self) -> float:
        """Mean word confidence weighted by characters (0 for an empty result)."""
        chars = sum(len(w.text) for w in self.words)
        if not chars:
            return 0.0
        return sum(w.confidence * len(w.text) for w in self.words) / chars

    def above(self, confidence: float) -> OcrResult:
        """Only the words at or above ``confidence`` (0..1)."""
        return replace(self, words=tuple(w for w in self.words if w.confidence >= confidence))

    def below(self, confidence: float) -> OcrResult:
        return replace(self, words=tuple(w for w in self.words if w.confidence < confidence))

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "language": self.language,
            "size": list(self.size),
            "seconds": round(self.seconds, 4),
            "confidence": round(self.confidence, 4),
            "text": self.text,
            "warnings": list(self.warnings),
            "lines": [
                {"text": ln.text, "box": list(ln.box), "confidence": round(ln.confidence, 4), "page": ln.page}
                for ln in self.lines
            ],
            "words": [
                {"text": w.text, "box": list(w.box), "confidence": round(w.confidence, 4), "line": w.line,
                 "block": w.block, "page": w.page}
                for w in self.words
            ],
        }

    # -- adapters -------------------------------------------------------------------------------

    @classmethod
    def from_tesseract(cls, data: dict[str, list[Any]], *, size: tuple[int, int], language: str = "eng",
                       page: int = 0, seconds: float = 0.0) -> OcrResult:
        """From ``pytesseract.image_to_data(..., output_type=Output.DICT)``."""
        line_index: dict[tuple[int, int, int], int] = {}
        words: list[OcrWord] = []
        for i, text in enumerate(data.get("text", [])):
            if int(data["level"][i]) != 5:
                continue
            text = str(text).strip()
            conf = float(data["conf"][i])
            if not text or conf < 0:
                continue
            key = (int(data["block_num"][i]), int(data["par_num"][i]), int(data["line_num"][i]))
            idx = line_index.setdefault(key, len(line_index))
            x, y, w, h = (int(data[k][i]) for k in ("left", "top", "width", "height"))
            words.append(OcrWord(text, (x, y, x + w, y + h), conf / 100.0, idx, key[0], page))
        return cls(tuple(words), "tesseract", language, size, seconds)

    @classmethod
    def from_rapidocr(cls, result: Sequence[Any] | None, *, size: tuple[int, int], page: int = 0,
                      seconds: float = 0.0) -> OcrResult:
        """From ``RapidOCR()(image)[0]``: a list of ``[quad, text, score]`` per detected text line.

        Lines are split into words on spaces with boxes apportioned by character count; lines are
        ordered top to bottom, then left to right, and lines on the same baseline are merged.
        """
        items = []
        for quad, text, score in result or []:
            xs = [p[0] for p in quad]
            ys = [p[1] for p in quad]
            box = (int(min(xs)), int(min(ys)), int(max(xs)), int(max(ys)))
            if str(text).strip():
                items.append((box, str(text).strip(), float(score)))
        rows = group_rows([b for b, _, _ in items])
        words: list[OcrWord] = []
        for line_idx, row in enumerate(rows):
            for item_idx in sorted(row, key=lambda k: items[k][0][0]):
                box, text, score = items[item_idx]
                words.extend(split_words(text, box, score, line_idx, page))
        return cls(tuple(words), "rapidocr", "eng", size, seconds)

    def merged_pages(self, other: OcrResult) -> OcrResult:
        """This result followed by ``other`` (a later page), keeping line indices unique."""
        offset = 1 + max((w.line for w in self.words), default=-1)
        moved = tuple(replace(w, line=w.line + offset) for w in other.words)
        return replace(self, words=self.words + moved, seconds=self.seconds + other.seconds,
                       warnings=self.warnings + other.warnings)


def group_rows(boxes: Sequence[Box], tolerance: float = 0.5) -> list[list[int]]:
    """Indices of boxes grouped into rows (top to bottom): boxes whose vertical centres lie within
    ``tolerance`` line heights of each other's row."""
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][1] + boxes[i][3]) / 2)
    rows: list[list[int]] = []
    row_centre = 0.0
    row_height = 0.0
    for i in order:
        b = boxes[i]
        centre, height = (b[1] + b[3]) / 2, b[3] - b[1]
        if rows and abs(centre - row_centre) <= tolerance * max(height, row_height):
            rows[-1].append(i)
            n = len(rows[-1])
            row_centre = (row_centre * (n - 1) + centre) / n
            row_height = max(row_height, height)
        else:
            rows.append([i])
            row_centre, row_height = centre, height
    return rows


def split_words(text: str, box: Box, score: float, line: int, page: int) -> list[OcrWord]:
    """A recognised line split into words, boxes apportioned by character count."""
    parts = text.split()
    if len(parts) <= 1:
        return [OcrWord(text, box, score, line, 0, page)]
    total = len(text)
    x0, y0, x1, y1 = box
    width = x1 - x0
    out = []
    pos = 0
    for part in parts:
        start = text.index(part, pos)
        end = start + len(part)
        pos = end
        bx0 = x0 + round(width * start / total)
        bx1 = x0 + round(width * end / total)
        out.append(OcrWord(part, (bx0, y0, max(bx1, bx0 + 1), y1), score, line, 0, page))
    return out
