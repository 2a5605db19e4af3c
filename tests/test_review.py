"""vision.documents.review: a document's fields as rows a person corrects, and back."""

from __future__ import annotations

import csv
import io

import pytest

from vision.documents import parse_nutrition, parse_receipt
from vision.documents.review import FieldRow, apply_rows, field_rows, parse_path, to_csv
from vision.ocr import OcrResult, OcrWord

RECEIPT = "SHOP SDN BHD\nDate: 01/02/2024\nTea 3.00\nCake 4.50\nSUBTOTAL 7.50\nTOTAL 7.50\nCASH 10.00\nCHANGE 2.50"
LABEL = ("Nutrition Facts\n8 servings per container\nServing size 2/3 cup (55g)\nCalories 230\n"
         "Total Fat 8g 10%\nSodium 160mg 7%\nTotal Carbohydrate 37g 13%\nProtein 3g\n"
         "INGREDIENTS: OATS, SUGAR, SALT.\nCONTAINS: MILK, SOY.")


def rows_of(doc: object) -> dict[str, str]:
    return {r.path: r.value for r in field_rows(doc)}  # type: ignore[arg-type]


def test_rows_round_trip_unchanged() -> None:
    for doc in (parse_receipt(RECEIPT), parse_nutrition(LABEL)):
        again = apply_rows(doc, field_rows(doc))
        assert again.model_dump(mode="json") == doc.model_dump(mode="json")
        assert again is not doc


def test_rows_name_every_field_with_paths() -> None:
    rows = rows_of(parse_receipt(RECEIPT))
    assert rows["items[1].name"] == "Cake" and rows["items[1].amount"] == "4.50" and rows["total"] == "7.50"
    assert rows["discount"] == ""  # empty fields are offered, to be filled
    assert not any(p.endswith(".line") or p in {"kind", "transcription", "checks", "evidence"} for p in rows)
    label = rows_of(parse_nutrition(LABEL))
    assert label["nutrients.sodium.amount"] == "160" and label["allergens[1]"] == "SOY"
    assert label["nutrients.total_fat.less_than"] == "false"


def test_notes_show_what_was_printed_and_what_ocr_doubted() -> None:
    doc = parse_nutrition(LABEL)
    note = next(r.note for r in field_rows(doc) if r.path == "nutrients.sodium.amount")
    assert note == "printed: 'Sodium 160mg 7%'"


def test_notes_name_the_words_ocr_doubted_on_a_fields_line() -> None:
    lines = ["SHOP", "Tea 3.00", "T0TAL 3.00"]
    words = [OcrWord(w, (10 * i, 20 * n, 10 * i + 9, 20 * n + 15), 0.42 if w == "T0TAL" else 0.97, n)
             for n, line in enumerate(lines) for i, w in enumerate(line.split())]
    doc = parse_receipt(OcrResult(tuple(words), "test", "eng", (200, 80)))
    notes = {r.path: r.note for r in field_rows(doc)}
    assert notes["total"] == "OCR unsure of 'T0TAL' (42%)" and notes["items[0].name"] == ""
    assert doc.ocr is not None and len(doc.ocr.words) == len(words)  # kept for overlays, not serialised
    assert "_ocr" not in doc.model_dump() and apply_rows(doc, field_rows(doc)).ocr is doc.ocr


def test_a_correction_is_validated_and_rechecked() -> None:
    doc = parse_receipt(RECEIPT)
    assert all(c.passed for c in doc.checks)
    rows = [r.with_value("5.00") if r.path == "items[1].amount" else r for r in field_rows(doc)]
    fixed = apply_rows(doc, rows)
    assert str(fixed.items[1].amount) == "5.00" and fixed.items[1].line == doc.items[1].line  # hidden keys kept
    assert [c.name for c in fixed.failed_checks] == ["items_sum"]
    assert str(doc.items[1].amount) == "4.50"  # the original is untouched


def test_deleting_and_adding_rows() -> None:
    doc = parse_receipt(RECEIPT)
    rows = [r for r in field_rows(doc) if not r.path.startswith("items[0]")]  # the person deleted the first item
    rows += [FieldRow("tax[0].label", "SST 6%"), FieldRow("tax[0].amount", "0.45"), FieldRow("", "")]
    fixed = apply_rows(doc, rows)
    assert [i.name for i in fixed.items] == ["Cake"] and fixed.tax[0].label == "SST 6%"
    assert str(fixed.tax[0].amount) == "0.45"
    cleared = apply_rows(doc, [r.with_value("") if r.path.startswith("items[") else r for r in field_rows(doc)])
    assert cleared.items == []  # an item whose every value was cleared is gone
    pairs = apply_rows(doc, [("merchant", "TEA HOUSE"), ("total", "7.50")])
    assert pairs.merchant == "TEA HOUSE" and pairs.items == [] and pairs.subtotal is None


@pytest.mark.parametrize(("rows", "message"), [
    ([("total", "seven")], r"total: .*decimal"),
    ([("colour", "red")], "a receipt has no field 'colour'"),
    ([("items[0].name", "Tea")], r"items\[0\]\.amount: Field required"),
    ([("", "orphan value")], "has no field name"),
    ([("items[x]", "1")], "is not a field path"),
    ([("merchant.name", "x"), ("merchant", "y")], "give a value to each of its fields"),
])
def test_wrong_rows_are_named(rows: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apply_rows(parse_receipt(RECEIPT), rows)


def test_paths() -> None:
    assert parse_path("items[0].amount") == ["items", 0, "amount"]
    assert parse_path('proprietary_blends["Energy Blend"][2]') == ["proprietary_blends", "Energy Blend", 2]
    for bad in ("", ".total", "[0]", "items[0]..x"):
        with pytest.raises(ValueError):
            parse_path(bad)


def test_csv_has_fields_then_checks() -> None:
    doc = parse_receipt(RECEIPT)
    table = list(csv.reader(io.StringIO(to_csv(doc))))
    assert table[0] == ["section", "field", "value", "detail"]
    assert ["field", "merchant", "SHOP SDN BHD", ""] in table
    assert [r[:3] for r in table if r[0] == "check"] == [["check", "items_sum", "passed"],
                                                         ["check", "total_breakdown", "passed"],
                                                         ["check", "change", "passed"]]
