"""Dates and times as printed on receipts and labels, to ISO 8601, keeping the printed form."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_MONTHS = {
    "JAN": 1, "JANUARY": 1, "FEB": 2, "FEBRUARY": 2, "MAR": 3, "MARCH": 3, "MAC": 3, "APR": 4, "APRIL": 4,
    "MAY": 5, "MEI": 5, "JUN": 6, "JUNE": 6, "JUL": 7, "JULY": 7, "AUG": 8, "AUGUST": 8, "OGOS": 8, "OGO": 8,
    "SEP": 9, "SEPT": 9, "SEPTEMBER": 9, "OCT": 10, "OCTOBER": 10, "OKT": 10, "NOV": 11, "NOVEMBER": 11,
    "DEC": 12, "DECEMBER": 12, "DIS": 12,
}
_MON = "|".join(sorted(_MONTHS, key=len, reverse=True))

_NUMERIC = re.compile(r"(?<![\d/.-])(\d{1,4})\s?([/.-])\s?(\d{1,2})\s?\2\s?(\d{2,4})(?![\d/])")
_NAMED_DMY = re.compile(rf"(?<![\d])(\d{{1,2}})[\s./-]*({_MON})[a-z]*[\s.,/-]*(\d{{2,4}})(?!\d)", re.I)
_NAMED_MDY = re.compile(rf"\b({_MON})[a-z]*[\s.]*(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})(?!\d)", re.I)
TIME_RE = re.compile(
    r"(?<![\d:.])([01]?\d|2[0-3])\s?(:|\.(?=\d\d\s?[AaPp]))\s?([0-5]\d)(?:\s?:\s?([0-5]\d))?(?:\s?([AaPp])\.?[Mm]\.?)?(?![\d:])"
)


@dataclass(frozen=True)
class FoundDate:
    date: dt.date
    printed: str
    position: int
    ambiguous: bool = False  # day and month could be swapped


def _year(y: str) -> int:
    n = int(y)
    if len(y) == 2:
        return 2000 + n if n < 70 else 1900 + n
    return n


def _valid(y: int, m: int, d: int) -> dt.date | None:
    if not 1900 <= y <= 2100:
        return None
    try:
        return dt.date(y, m, d)
    except ValueError:
        return None


def find_dates(text: str, *, month_first: bool = False) -> list[FoundDate]:
    """Every plausible date in ``text``; ``month_first`` for US-style ``12/28/2017`` when ambiguous."""
    original = text
    text = re.sub(r"(?<=\d)[Oo]|[Oo](?=\d)", "0", text)  # same length: positions still match the original
    out: list[FoundDate] = []
    for m in _NUMERIC.finditer(text):
        a, b, c = m.group(1), m.group(3), m.group(4)
        if len(a) == 4:  # yyyy-mm-dd
            date = _valid(int(a), int(b), int(c))
            if date:
                out.append(FoundDate(date, original[m.start():m.end()], m.start()))
            continue
        if len(c) == 3:
            continue
        y = _year(c)
        first, second = int(a), int(b)
        dmy = _valid(y, second, first)
        mdy = _valid(y, first, second)
        if dmy and mdy and dmy != mdy:
            out.append(FoundDate(mdy if month_first else dmy, original[m.start():m.end()], m.start(), ambiguous=True))
        elif dmy or mdy:
            out.append(FoundDate(dmy or mdy, original[m.start():m.end()], m.start()))  # type: ignore[arg-type]
    for m in _NAMED_DMY.finditer(text):
        date = _valid(_year(m.group(3)), _month(m.group(2)), int(m.group(1)))
        if date:
            out.append(FoundDate(date, original[m.start():m.end()], m.start()))
    for m in _NAMED_MDY.finditer(text):
        date = _valid(int(m.group(3)), _month(m.group(1)), int(m.group(2)))
        if date:
            out.append(FoundDate(date, original[m.start():m.end()], m.start()))
    out.sort(key=lambda f: f.position)
    return out


_LOOSE = re.compile(
    r"(?<!\d)(?:\d{1,2}\s?[/.-]\s?\d\s?\d?\s?[/.-]\s?\d\s?\d(?:\s?\d\s?\d)?"  # spaces inside
    r"|\d{4}\s?[/.-]\s?\d{4}|\d{2}\s?[/.-]\s?\d{6}"  # a lost separator
    r"|\d{2}[71]\d{2}[/.-]\d{4}|\d{2}[/.-]\d{2}[71]\d{4})(?!\d)"  # a separator read as 7 or 1
    r"|(?<!\d)\d{8}(?=\s+\d{1,2}:\d{2})"  # ddmmyyyy printed without separators, before a time
)


def find_date_loosely(text: str, *, month_first: bool = False) -> FoundDate | None:
    """A date OCR damaged, for text that a DATE label says holds one: spaces inside it
    (``05/0 1/2018``), a lost separator (``1506/2018``), a separator read as 7 or 1 (``13707/2017``)."""
    for m in _LOOSE.finditer(text):
        token = re.sub(r"\s", "", m.group(0))
        variants = [token]
        digits = re.sub(r"\D", "", token)
        if len(digits) == 8:
            variants.append(f"{digits[:2]}/{digits[2:4]}/{digits[4:]}")
        variants += [token[:i] + "/" + token[i + 1:] for i, ch in enumerate(token) if ch in "71" and i in (2, 5)]
        for v in variants:
            found = find_dates(v, month_first=month_first)
            if found:
                return FoundDate(found[0].date, m.group(0), m.start(), found[0].ambiguous)
    return None


def _month(name: str) -> int:
    key = name.upper()
    if key in _MONTHS:
        return _MONTHS[key]
    return _MONTHS.get(key[:3], 0)


def find_time(text: str) -> str | None:
    """The first time of day, as ``HH:MM`` or ``HH:MM:SS`` (24-hour)."""
    for m in TIME_RE.finditer(text):
        h, mi, sec, ampm = int(m.group(1)), m.group(3), m.group(4), m.group(5)
        if ampm and 1 <= h <= 12:  # "22:17PM" is a 24-hour time with a stray suffix
            h = (h % 12) + (12 if ampm.upper() == "P" else 0)
        return f"{h:02d}:{mi}" + (f":{sec}" if sec else "")
    return None
