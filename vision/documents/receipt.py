"""Receipts: merchant, address, date and time, line items, subtotal, discounts, tax, service,
rounding, total, paid, change and currency, each with its evidence, and the checks that tie them.

The parser reads OCR lines (or plain text). Labels are matched leniently (OCR turns TOTAL into
T0TAL), a value is the rightmost amount on its label's line or, failing that, on the next line,
and the total is the candidate that the rest of the receipt agrees with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from ..ocr.result import OcrResult
from .base import (
    Check,
    Document,
    Evidence,
    Line,
    amounts_in,
    lines_of,
    normalise_spacing,
)
from .dates import find_date_loosely, find_dates, find_time

TOLERANCE = Decimal("0.02")


class LineItem(BaseModel):
    name: str
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    amount: Decimal
    line: int | None = None


class TaxLine(BaseModel):
    label: str
    rate_percent: Decimal | None = None
    amount: Decimal


class Receipt(Document):
    """A parsed receipt. Money is ``Decimal`` (a decimal string in JSON); ``date`` is ISO 8601."""

    kind: Literal["receipt"] = "receipt"
    merchant: str | None = None
    address: str | None = None
    date: str | None = None
    date_printed: str | None = None
    time: str | None = None
    currency: str | None = None
    items: list[LineItem] = Field(default_factory=list)
    subtotal: Decimal | None = None
    discount: Decimal | None = None
    tax: list[TaxLine] = Field(default_factory=list)
    service: Decimal | None = None
    rounding: Decimal | None = None
    total: Decimal | None = None
    paid: Decimal | None = None
    change: Decimal | None = None

    def run_checks(self) -> list[Check]:
        return receipt_checks(self)


# --- label matching ------------------------------------------------------------------------------

def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.I)


T = r"T[O0AQ][TI]A?[LI1]"  # TOTAL as OCR spells it: TOTAL, T0TAL, TATAL, TOIAL, TOTAI

_CHANGE = _rx(r"\bCHANGE\b|\bCHANG\b|\bBAKI\b|\bKEMBALI|\bCHG\s*DUE")
_PAID = _rx(r"\bCASH\b|TENDER|\bPAID\b|\bVISA\b|MASTER|\bCARD\b|CREDIT|DEBIT|\bPAYMENT\b|\bTUNAI\b|E-?WALLET|"
            r"GRAB\s?PAY|\bBOOST\b|\bAMEX\b|\bNETS\b|RECEIVED")
_SUBTOTAL = _rx(rf"SUB\s*-?\s*{T}|\bSUBTTL\b|{T}\s*(?:SALES?\s*)?\(?(?:EXCL|EXCLUDING|BEFORE|W/?O)|\bNET\s*SALES?\b")
_TAX = _rx(r"\bGST\b|\bSST\b|\bVAT\b|\bTAX\b|\bPPN\b")
_SERVICE = _rx(r"SERVICE\s*(?:CHARGE|CHG|CHRG)|\bSVC\b|\bSERV\.?\s*CHG|\bS/C\b")
_DISCOUNT = _rx(r"DISC(?:OUNT)?\b|\bLESS\b|PROMO|VOUCHER|SAVING|\bREBATE")
_ROUNDING = _rx(r"ROUND(?:ING)?\s*(?:ADJ|ADJUSTMENT)?\b|\bRND\s*ADJ|\bADJ(?:USTMENT)?\b|ROUNDANG|R0UNDING")
_TOTAL = _rx(rf"{T}|\bJUMLAH|AMOUNT\s+DUE|BALANCE\s+DUE|\bAMT\s+DUE|\bNET\s*T?\s*(?:AMOUNT|AMT|TOTAL)|\bGRAND\b")
_NOT_TOTAL = _rx(rf"{T}\s*(?:QTY|QUANTITY|ITEMS?|NO\.?|PCS|UNITS?|DISC|DISCOUNT|SAVINGS?|POINTS?|TAX|GST|SST|VAT)|"
                 rf"(?:QTY|ITEMS?)\s*{T}|NO\.?\s*OF\s*ITEMS|TAX\s*{T}")
_TOTAL_STRONG = _rx(rf"ROUND(?:ED|ING)?\s*{T}|{T}\s*ROUND|GRAND|\bNETT?\s*{T}|(?:{T}|AMOUNT|AMT|NETT?)\s*PAYABLE|"
                    rf"AMOUNT\s+DUE|{T}\s*(?:SALES?\s*)?\(?(?:INCL|WITH)|INCL\.?\s*(?:OF\s*)?(?:GST|TAX|VAT)|JUMLAH")
_HEADER_NOISE = _rx(r"\b(?:TAX\s+INVOICE|INVOICE|RECEIPT|CASH\s*BILL|WELCOME|THANK|CASHIER|TABLE|TERMINAL|"
                    r"COUNTER|MEMBER|DOCUMENT|BILL\s*NO|TEL|PHONE|FAX|EMAIL|WEBSITE|GST\s*(?:REG|ID|NO)|"
                    r"REG\.?\s*NO|COMPANY\s*NO|ROC)\b")
_COMPANY = _rx(r"\b(?:SDN\.?\s*BHD|BHD|S/B|LTD|LIMITED|LLC|INC|PLC|CORP|ENTERPRISE|TRADING|RESTAURANT|RESTORAN|"
               r"MARKET|MART|STORE|SHOP|CAFE|BAKERY|HARDWARE|STATIONERY|PHARMACY|FARMACY|KEDAI|COMPANY|CO\.)\b")
_ADDRESS = _rx(r"\b(?:JALAN|JLN|LORONG|TAMAN|ROAD|RD|STREET|ST|AVENUE|AVE|LANE|BLOK|BLOCK|LOT|NO\.?\s?\d|"
               r"\d{5}|PERSIARAN|KAWASAN|BANDAR|SELANGOR|JOHOR|KUALA|LUMPUR|PENANG|MELAKA|PERAK|SABAH|"
               r"KEDAH|PAHANG|PUTRAJAYA)\b")
_COLUMN_HEADER = _rx(r"^\W*(?:QTY|QUANTITY|DESC(?:RIPTION)?|ITEM|PRICE|AMOUNT|AMT|TOTAL|U\.?\s?PRICE|CODE|DISC|RM|"
                     r"S/?N|NO)\W*(?:\s+(?:QTY|DESC(?:RIPTION)?|ITEM|PRICE|AMOUNT|AMT|TOTAL|U\.?\s?PRICE|CODE|"
                     r"DISC|RM|TAX|GST)\W*)*$")
_BARE_CENTS = re.compile(r"(?<![\d.,])(\d{3,6})\s*$")
_DATE_LABEL = _rx(r"\b(?:DATE|TARIKH|DT)\b\s*[:.]?")
_SUMMARY = _rx(r"\b(?:GST|TAX|VAT)\s*(?:SUMM?ARY|SUMHARY|SUMNARY|ANALYSIS)|\bSUMMARY\b")
_PERCENT = re.compile(r"(\d{1,2}(?:[.,]\d{1,2})?)\s?%")


@dataclass
class _Row:
    line: Line
    text: str
    label: str
    amounts: list[tuple[Decimal, str, int]]

    @property
    def value(self) -> Decimal | None:
        return self.amounts[-1][0] if self.amounts else None

    @property
    def has_letters(self) -> bool:
        return sum(c.isalpha() for c in self.label) >= 2


def _unglue(text: str) -> str:
    """Put back spaces OCR lost where they matter to the parser: "CASHRM14.00" -> "CASH RM14.00",
    "RoundingAdjustment" -> "Rounding Adjustment", "15/05/201710:49" -> "15/05/2017 10:49"."""
    text = re.sub(r"(?<=[A-Za-z])(RM|MYR|USD|SGD)(?=\s?[\d.])", r" \1", text)
    text = re.sub(r"(?<=[a-z])(?=[A-Z][a-z])", " ", text)
    text = re.sub(r"(\d{1,2}[/.-]\d{1,2}[/.-](?:19|20)\d{2})(?=\d{1,2}:)", r"\1 ", text)
    text = re.sub(r"(\d{1,2}[/.-]\d{1,2}[/.-]\d{2})(?=\d{2}:\d{2})(?!(?:19|20))", r"\1 ", text)
    return text


def _rows(lines: list[Line]) -> list[_Row]:
    out = []
    for ln in lines:
        text = _unglue(normalise_spacing(ln.text))
        amounts = amounts_in(text)
        label = text
        for _value, printed, _pos in reversed(amounts):
            label = label.replace(printed, " ")
        out.append(_Row(ln, text, " ".join(label.split()), amounts))
    return out


def _role(label: str) -> tuple[str, int] | None:
    """What a label names, with a priority for totals (higher wins)."""
    if _CHANGE.search(label):
        return "change", 0
    if _TOTAL_STRONG.search(label) and not _NOT_TOTAL.search(label) and not _SUBTOTAL.search(label):
        return "total", 3 if _rx("ROUND").search(label) else 2
    if _SUBTOTAL.search(label):
        return "subtotal", 0
    if _ROUNDING.search(label):
        return "rounding", 0
    if _SERVICE.search(label):
        return "service", 0
    if _DISCOUNT.search(label) and not _TOTAL.search(label):
        return "discount", 0
    if _TAX.search(label) and (not _TOTAL.search(label) or _NOT_TOTAL.search(label)):
        return "tax", 0
    if _TOTAL.search(label) and not _NOT_TOTAL.search(label):
        return "total", 1
    if _PAID.search(label):
        return "paid", 0
    return None


def _value_for(rows: list[_Row], i: int) -> tuple[Decimal, _Row] | None:
    """The amount a label at ``rows[i]`` names: rightmost on its line, else on the next line(s)
    when those carry only numbers ("TOTAL" above "15.00")."""
    row = rows[i]
    if row.amounts:
        return row.value, row  # type: ignore[return-value]
    for j in (i + 1, i + 2):
        if j < len(rows) and rows[j].amounts and not rows[j].has_letters:
            return rows[j].value, rows[j]  # type: ignore[return-value]
        if j < len(rows) and rows[j].has_letters and not _rx(r"^\W*(?:RM|MYR|\$|£|€)\W*$").match(rows[j].label):
            break
    return None


# --- the parser ----------------------------------------------------------------------------------

def parse_receipt(source: OcrResult | str | list[str], *, month_first: bool | None = None) -> Receipt:
    """A :class:`Receipt` from OCR output (or its text). ``month_first`` forces US-style dates."""
    lines = lines_of(source)
    rows = _rows(lines)
    text = "\n".join(r.text for r in rows)
    receipt = Receipt(transcription=text)
    evidence: dict[str, list[Evidence]] = {}

    def note(field: str, row: _Row, *more: _Row) -> None:
        evidence.setdefault(field, []).extend(r.line.evidence() for r in (row, *more))

    receipt.currency = _currency(text)
    us = month_first if month_first is not None else receipt.currency == "USD"

    # roles: a row may hold several label-amount pairs when two columns share a line
    found: dict[str, list[tuple[Decimal, int, int, _Row, _Row]]] = {}
    for i, row in enumerate(rows):
        for label, value in _segments(row):
            role = _role(label) if sum(c.isalpha() for c in label) >= 2 else None
            if role is None:
                continue
            name, priority = role
            if value is None:
                hit = _value_for(rows, i)
                if hit is None:
                    cents = _BARE_CENTS.search(label) if name in {"total", "subtotal", "paid", "change"} else None
                    if cents is None:
                        continue
                    # "TOTAL 1250" on a receipt whose other amounts have decimals: the point was lost
                    value = (Decimal(cents.group(1)) / 100).quantize(Decimal("0.01"))
                    receipt.warnings.append(f"read {cents.group(1)!r} on {row.text.strip()!r} as {value} "
                                            "(no decimal point printed or read)")
                    priority = 0
                    hit = (value, row)
                value, value_row = hit
            else:
                value_row = row
            found.setdefault(name, []).append((value, priority, i, row, value_row))

    def first(name: str) -> Decimal | None:
        hits = found.get(name)
        if not hits:
            return None
        value, _p, _i, row, vrow = hits[0]
        note(name, row, *(() if vrow is row else (vrow,)))
        return value

    receipt.subtotal = first("subtotal")
    receipt.service = first("service")
    receipt.rounding = first("rounding")
    receipt.discount = abs(first("discount") or 0) or None
    receipt.paid = _last(found.get("paid"))
    if receipt.paid is not None:
        note("paid", found["paid"][-1][3])
    receipt.change = _last(found.get("change"))
    if receipt.change is not None:
        note("change", found["change"][-1][3])
    receipt.tax = [
        TaxLine(label=row.label[:40], rate_percent=_rate(row.label), amount=value)
        for value, _p, _i, row, _v in found.get("tax", [])
        if not _is_tax_summary(row)
    ][:3]
    for _v, _p, _i, row, _vr in found.get("tax", [])[:3]:
        note("tax", row)
    total = _choose_total(found, receipt, rows)
    if total is not None:
        receipt.total = total[0]
        note("total", total[1], *(() if total[2] is total[1] else (total[2],)))

    date_hit = _date(rows, us)
    if date_hit:
        found_date, row = date_hit
        receipt.date = found_date.date.isoformat()
        receipt.date_printed = found_date.printed
        note("date", row)
    for row in rows:
        t = find_time(row.text)
        if t and (_rx(r"TIME|\d[/.-]\d").search(row.text) or not receipt.time):
            receipt.time = t
            note("time", row)
            break

    merchant_row = _merchant(rows)
    if merchant_row is not None:
        receipt.merchant = merchant_row.text.strip()
        note("merchant", merchant_row)
        address_rows = _address(rows, rows.index(merchant_row))
        if address_rows:
            receipt.address = ", ".join(r.text.strip().rstrip(",") for r in address_rows)
            note("address", *address_rows)

    receipt.items = _items(rows)
    receipt.finish(source, evidence)
    return receipt


def _last(hits: list[tuple[Decimal, int, int, _Row, _Row]] | None) -> Decimal | None:
    return hits[-1][0] if hits else None


def _rate(label: str) -> Decimal | None:
    m = _PERCENT.search(label)
    return Decimal(m.group(1).replace(",", ".")) if m else None


def _is_tax_summary(row: _Row) -> bool:
    """GST summary tables ("SR @6% 15.00 0.90") list the taxable amount too: keep only the tax."""
    return len(row.amounts) >= 2 and _rx(r"\b(?:SR|ZR|TX|SUMMARY|AMT|AMOUNT)\b").search(row.label) is not None


def _choose_total(found: dict[str, list[tuple[Decimal, int, int, _Row, _Row]]], receipt: Receipt,
                  rows: list[_Row]) -> tuple[Decimal, _Row, _Row] | None:
    """The amount payable. In order: a total line the payment confirms (paid - change); any labelled
    amount the payment confirms (a "Rounding" line that is really the rounded total); the payment
    itself when another amount on the receipt corroborates it; the strongest-labelled total (after
    the rounding line when there is one); the last subtotal (receipts without a TOTAL line)."""
    candidates = found.get("total", [])
    expected = None
    if receipt.paid is not None and receipt.change is not None and receipt.paid > receipt.change:
        expected = receipt.paid - receipt.change
    if expected is not None:
        # exactly first: a rounding adjustment is as small as the tolerance
        for tolerance in (Decimal(0), TOLERANCE):
            for value, _p, _i, row, vrow in sorted(candidates, key=lambda c: (-c[1], -c[2])):
                if abs(value - expected) <= tolerance:
                    return value, row, vrow
            for role in ("rounding", "subtotal"):
                for value, _p, _i, row, vrow in reversed(found.get(role, [])):
                    if abs(value - expected) <= tolerance:
                        return value, row, vrow
        paid_row = found["paid"][-1][3]
        seen = [a for r in rows if r is not paid_row and not _CHANGE.search(r.label) for a, _t, _p in r.amounts]
        if any(abs(a - expected) <= TOLERANCE for a in seen):
            return expected, paid_row, paid_row
    summary_at = next((i for i, r in enumerate(rows) if _SUMMARY.search(r.text)), len(rows))
    candidates = [c for c in candidates if c[2] < summary_at]  # a tax summary's "Total" column is not it
    if candidates:
        rounding_at = max((c[2] for c in found.get("rounding", [])), default=None)
        after = [c for c in candidates if rounding_at is not None and c[2] > rounding_at]
        if after:  # the total printed after the rounding line is the rounded one
            value, _p, _i, row, vrow = max(after, key=lambda c: (c[1], -c[2]))
            return value, row, vrow
        best = max(c[1] for c in candidates)
        top = [c for c in candidates if c[1] == best]
        # several equally labelled totals: the largest (the first is often a per-item column), the last of equals
        value, _p, _i, row, vrow = max(top, key=lambda c: (c[0], c[2]))
        return value, row, vrow
    subtotals = found.get("subtotal", [])
    if subtotals:
        value, _p, _i, row, vrow = subtotals[-1]
        return value, row, vrow
    if expected is not None and expected > 0:
        paid_row = found["paid"][-1][3]
        return expected, paid_row, paid_row
    return None


def _segments(row: _Row) -> list[tuple[str, Decimal | None]]:
    """``(label, amount)`` pairs along a row: each amount closes the label text before it. A trailing
    label with no amount gets None (its value may be on the next line)."""
    out: list[tuple[str, Decimal | None]] = []
    start = 0
    for value, printed, pos in row.amounts:
        label = row.text[start:pos]
        if sum(c.isalpha() for c in label) >= 2 or not out:
            out.append((" ".join(label.split()), value))
        else:  # "QTY 2 x 1.85 3.70": a second amount on the same label belongs to it
            out[-1] = (out[-1][0], value)
        start = pos + len(printed)
    tail = row.text[start:]
    if sum(c.isalpha() for c in tail) >= 2:
        out.append((" ".join(tail.split()), None))
    return out


def _date(rows: list[_Row], month_first: bool) -> tuple[object, _Row] | None:
    best = None
    for i, row in enumerate(rows):
        dates = find_dates(row.text, month_first=month_first)
        if not dates and (m := _DATE_LABEL.search(row.text)):
            loose = find_date_loosely(row.text[m.end():], month_first=month_first)
            dates = [loose] if loose else []
        if not dates:
            continue
        labelled = bool(_rx(r"\bDATE|TARIKH|\bDT\b").search(row.text)) or (
            i > 0 and _rx(r"\bDATE\W*$").search(rows[i - 1].text) is not None)
        score = (labelled, -i)
        if best is None or score > best[0]:
            best = (score, dates[0], row)
    if best is None:  # nothing clean anywhere: accept a damaged date on an unlabelled line
        for row in rows:
            loose = find_date_loosely(row.text, month_first=month_first)
            if loose:
                return loose, row
    return (best[1], best[2]) if best else None


def _currency(text: str) -> str | None:
    checks = [("GBP", r"£|\bGBP\b"), ("EUR", r"€|\bEUR\b"), ("SGD", r"S\$|\bSGD\b"),
              ("MYR", r"\bRM\s?\d|\bRM\b|\bMYR\b"), ("USD", r"\$|\bUSD\b"), ("IDR", r"\bRp\.?\s?\d|\bIDR\b")]
    for code, pattern in checks:
        if re.search(pattern, text):
            return code
    return None


def _merchant(rows: list[_Row]) -> _Row | None:
    top = rows[: max(6, len(rows) // 4)]
    named = [r for r in top[:8] if _COMPANY.search(r.text) and not _HEADER_NOISE.search(r.text)]
    if named:
        return named[0]
    for r in top:
        letters = sum(c.isalpha() for c in r.text)
        if letters >= 3 and not _HEADER_NOISE.search(r.text) and not r.amounts and not find_dates(r.text):
            return r
    return None


def _address(rows: list[_Row], start: int) -> list[_Row]:
    out = []
    for r in rows[start + 1: start + 7]:
        if _HEADER_NOISE.search(r.text) or find_dates(r.text) or r.amounts:
            break
        if re.fullmatch(r"[\s\dA-Z-]{4,14}", r.text.strip()) and re.search(r"\d{4,}-?[A-Z]?$", r.text.strip()):
            continue  # a registration number such as 789417-W
        if _ADDRESS.search(r.text) or "," in r.text:
            out.append(r)
        elif out:
            break
    return out


def _items(rows: list[_Row]) -> list[LineItem]:
    """Lines with an amount before the first subtotal/total/tax line; a numbers-only line after a
    description line completes it (qty, unit price, amount)."""
    end = len(rows)
    for i, row in enumerate(rows):
        role = _role(row.label) if row.has_letters else None
        if role and role[0] in {"subtotal", "total", "tax", "paid", "change", "rounding"}:
            end = i
            break
    start = 0
    for i, row in enumerate(rows[:end]):
        if find_dates(row.text) or _COLUMN_HEADER.match(row.text) or _HEADER_NOISE.search(row.text):
            start = i + 1
    items: list[LineItem] = []
    pending: _Row | None = None
    for row in rows[start:end]:
        if _COLUMN_HEADER.match(row.text) or _HEADER_NOISE.search(row.text):
            continue
        if not row.amounts:
            if row.has_letters:
                pending = row
            continue
        name = row.label if row.has_letters and not _mostly_numeric(row.label) else (pending.label if pending else "")
        name = re.sub(r"^\d+\s*[xX@*]\s*|\s*[xX@*]\s*$", "", name).strip(" :*-")
        if not name:
            continue
        qty, unit = _quantity(row)
        items.append(LineItem(name=name, quantity=qty, unit_price=unit, amount=row.amounts[-1][0],
                              line=row.line.index))
        pending = None
    return items


def _mostly_numeric(label: str) -> bool:
    letters = sum(c.isalpha() for c in label)
    return (letters <= 3 and bool(re.search(r"\d", label))) or letters <= 2


def _quantity(row: _Row) -> tuple[Decimal | None, Decimal | None]:
    qty = None
    unit = row.amounts[-2][0] if len(row.amounts) >= 2 else None
    amount = row.amounts[-1][0]
    m = re.search(r"^\W*(\d{1,3})\s*(?:[xX@*]|PCS?\b|UNITS?\b|NOS?\b|EA\b)", row.text) or re.search(
        r"(?:^|\s)(\d{1,3})\s*(?:PCS?|UNITS?|NOS?|EA)\b", row.text)
    if m is None and unit is not None:  # "Oat Milk x2 1.85 3.70": trusted only with a printed unit price
        m = re.search(r"(?:\b[xX@]\s*|QTY\s*:?\s*)(\d{1,3})(?!\s*[.,]\d)", row.text)
    if m:
        qty = Decimal(m.group(1))
    if qty is None and unit:
        ratio = amount / unit if unit else None
        if ratio is not None and ratio == ratio.to_integral_value() and 0 < ratio < 100:
            qty = ratio.quantize(Decimal(1))
    if unit is None and qty:
        unit = (amount / qty).quantize(Decimal("0.01"))
    if qty is not None and unit is not None and abs(qty * unit - amount) > TOLERANCE:
        # the second-last amount was a discount or a tax column, not a unit price
        unit = (amount / qty).quantize(Decimal("0.01")) if qty else None
    return qty, unit


# --- checks --------------------------------------------------------------------------------------

def receipt_checks(r: Receipt) -> list[Check]:
    """Items add up to the subtotal; subtotal + tax + service + rounding - discount = total;
    paid - total = change. Only the checks the receipt has the numbers for."""
    out: list[Check] = []
    tax = sum((t.amount for t in r.tax), Decimal(0))
    if r.items:
        items_sum = sum((i.amount for i in r.items), Decimal(0))
        target, name = (r.subtotal, "subtotal") if r.subtotal is not None else (
            (r.total, "total") if r.total is not None and not (tax or r.service or r.discount) else (None, ""))
        if target is not None:
            ok = abs(items_sum - target) <= TOLERANCE
            out.append(Check(name="items_sum", passed=ok, expected=str(target), found=str(items_sum),
                             detail=f"the {len(r.items)} items add up to {items_sum}, the {name} is {target}"))
    if r.subtotal is not None and r.total is not None:
        computed = r.subtotal + tax + (r.service or 0) + (r.rounding or 0) - (r.discount or 0)
        ok = abs(computed - r.total) <= TOLERANCE
        parts = [f"subtotal {r.subtotal}"] + ([f"tax {tax}"] if tax else []) + (
            [f"service {r.service}"] if r.service else []) + ([f"rounding {r.rounding}"] if r.rounding else []) + (
            [f"discount -{r.discount}"] if r.discount else [])
        out.append(Check(name="total_breakdown", passed=ok, expected=str(r.total), found=str(computed),
                         detail=f"{' + '.join(parts)} = {computed}; the total is {r.total}"))
    if r.paid is not None and r.total is not None and r.change is not None:
        ok = abs(r.paid - r.total - r.change) <= TOLERANCE
        out.append(Check(name="change", passed=ok, expected=str(r.change), found=str(r.paid - r.total),
                         detail=f"paid {r.paid} - total {r.total} = {r.paid - r.total}; the change is {r.change}"))
    if r.total is None:
        out.append(Check(name="total_found", passed=False, detail="no total was found"))
    return out
