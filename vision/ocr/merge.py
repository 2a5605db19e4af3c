"""Merging two engines' readings of the same image: one's characters, the other's spacing."""

from __future__ import annotations

from dataclasses import replace

from rapidfuzz.distance import Levenshtein

from .result import OcrLine, OcrResult, OcrWord, split_words

MIN_AGREEMENT = 0.6  # share of characters the two readings must have in common to borrow spaces


def _strip_spaces(text: str) -> tuple[str, set[int]]:
    """The characters without spaces, and the indices of the characters a space stood before."""
    chars: list[str] = []
    before: set[int] = set()
    for ch in text:
        if ch.isspace():
            if chars:
                before.add(len(chars))
        else:
            chars.append(ch)
    return "".join(chars), before


def respace(text: str, reference: str) -> str:
    """``text`` with the spaces it has plus those ``reference`` has at the aligned positions.

    >>> respace("TOTALEXCL.6%GST", "Total Excl.6% GSI")
    'TOTAL EXCL.6% GST'
    """
    a, spaces = _strip_spaces(text)
    b, b_spaces = _strip_spaces(reference)
    if not a or not b or 1 - Levenshtein.normalized_distance(a.upper(), b.upper()) < MIN_AGREEMENT:
        return text
    for tag, i1, i2, j1, j2 in Levenshtein.opcodes(a.upper(), b.upper()):
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            spaces.update(i1 + k for k in range(j2 - j1) if j1 + k in b_spaces and i1 + k > 0)
        elif tag == "insert" and j1 in b_spaces and 0 < i1 < len(a):
            spaces.add(i1)
    return "".join((" " if i in spaces else "") + ch for i, ch in enumerate(a))


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Share of ``b``'s area inside ``a``."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    area = max(1, (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / area


def respace_with(primary: OcrResult, reference: OcrResult) -> OcrResult:
    """``primary``'s lines re-spaced with the words of ``reference`` that lie inside each line."""
    words: list[OcrWord] = []
    for line in primary.lines:
        inside = sorted((w for w in reference.words if _overlap(line.box, w.box) >= 0.5), key=lambda w: w.box[0])
        text = respace(line.text, " ".join(w.text for w in inside)) if inside else line.text
        words.extend(_rewords(line, text))
    return replace(primary, words=tuple(words), engine="combined", seconds=primary.seconds + reference.seconds)


def _rewords(line: OcrLine, text: str) -> list[OcrWord]:
    first = line.words[0]
    return split_words(text, line.box, line.confidence, line.index, first.page)
