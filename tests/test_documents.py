"""Receipts, nutrition labels and generic documents: parsers on messy OCR text, checks that fail
when the numbers are wrong, rendered images, and the real SROIE receipts where present."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image, ImageFilter

from vision.documents import detect_kind, extract, load_document, parse_generic, parse_nutrition, parse_receipt
from vision.documents.base import amounts_in, normalise_spacing, parse_amount
from vision.documents.dates import find_date_loosely, find_dates, find_time

from .conftest import ASSETS, SHARED_DATA, TESSERACT, has_rapidocr

needs_ocr = pytest.mark.skipif(not (TESSERACT or has_rapidocr()), reason="no OCR engine installed")

RECEIPT = """\
GREENLEAF MARKET SDN BHD
12 Jalan Harbour, 81100 Johor Bahru
Tel 07-1234567
Date: 14/03/2025 Time: 18:42
2 x Oat Milk 1.85 3.70
Sourdough Loaf 3.20
Eggs x6 2.45
SUB TOTAL 9.35
GST 6% 0.56
Rounding -0.01
TOTAL RM 9.90
CASH 20.00
CHANGE 10.10
"""


def test_receipt_fields_and_checks() -> None:
    r = parse_receipt(RECEIPT)
    assert r.merchant == "GREENLEAF MARKET SDN BHD"
    assert r.address == "12 Jalan Harbour, 81100 Johor Bahru"
    assert (r.date, r.date_printed, r.time) == ("2025-03-14", "14/03/2025", "18:42")
    assert r.currency == "MYR"
    assert [(i.name, i.quantity, i.unit_price, i.amount) for i in r.items] == [
        ("Oat Milk", Decimal(2), Decimal("1.85"), Decimal("3.70")),
        ("Sourdough Loaf", None, None, Decimal("3.20")),
        ("Eggs x6", None, None, Decimal("2.45")),
    ]
    assert (r.subtotal, r.rounding, r.total, r.paid, r.change) == (
        Decimal("9.35"), Decimal("-0.01"), Decimal("9.90"), Decimal("20.00"), Decimal("10.10"))
    assert r.tax[0].amount == Decimal("0.56") and r.tax[0].rate_percent == Decimal(6)
    assert {c.name: c.passed for c in r.checks} == {"items_sum": True, "total_breakdown": True, "change": True}
    assert r.evidence["total"][0].text == "TOTAL RM 9.90"
    data = r.to_json_dict()
    assert data["total"] == "9.90" and data["date"] == "2025-03-14" and data["kind"] == "receipt"


@pytest.mark.parametrize(
    ("broken", "failing"),
    [
        (RECEIPT.replace("SUB TOTAL 9.35", "SUB TOTAL 9.53"), {"items_sum", "total_breakdown"}),
        (RECEIPT.replace("CHANGE 10.10", "CHANGE 11.10"), {"change"}),
        (RECEIPT.replace("GST 6% 0.56", "GST 6% 0.65"), {"total_breakdown"}),
    ],
)
def test_checks_fail_when_numbers_are_wrong(broken: str, failing: set[str]) -> None:
    r = parse_receipt(broken)
    assert {c.name for c in r.checks if c.passed is False} == failing


@pytest.mark.parametrize(
    ("text", "total"),
    [
        ("ITEM A 5,50\nTOTAL 12,50\nCASH 20,00\nCHANGE 7,50", "12.50"),  # decimal comma
        ("ITEM 3.00\nTOTAL $12.50\nVISA $12.50", "12.50"),  # $ prefix
        ("ITEM RM12.50\nTOTAL (RM):\n12.50\nCASH RM 20.00", "12.50"),  # total on the next line
        ("T O T A L   1 2 . 5 0\nCASH 2 0 . 0 0", "12.50"),  # dot-matrix spacing
        ("ITEM 12.50\nTOTAL 1250\nCASH 20.00\nCHANGE 7.50", "12.50"),  # missing decimal point
        ("SUBTOTAL 10.00\nGST 0.60\nTOTAL INCL GST 10.60\nROUNDING 0.00\nTOTAL 10.60\nCASH 11.00\nCHANGE 0.40",
         "10.60"),
        ("Total Sales (Inclusive GST) RM 13.58\nRounding Adjustment RM 0.02\nRounding RM 13.60\nCASH RM 14.00\n"
         "CHANGE RM 0.40", "13.60"),  # the rounded total labelled "Rounding", confirmed by the payment
        ("SUBTOTAL (QTY 4) RM41.43\nROUNDING RM0.02\nSUBTOTAL (QTY 4) RM41.45\nCASH RM50.00\nCHANGE RM8.55\n"
         "GST SUMMARY\nRate Net GST Total (RM)\nS 6% 39.09 2.34 41.43", "41.45"),  # no TOTAL line at all
        ("Tatal: 4.70\nCash Received: 4.70", "4.70"),  # OCR misspelling
        ("GST Payable: 4.95\nTotal (Inclusive of GST): 87.45\nCASH : 87.45", "87.45"),
    ],
)
def test_messy_totals(text: str, total: str) -> None:
    assert str(parse_receipt(text).total) == total


def test_missing_decimal_point_is_reported() -> None:
    r = parse_receipt("ITEM 12.50\nTOTAL 1250\nCASH 20.00\nCHANGE 7.50")
    assert any("no decimal point" in w for w in r.warnings)


def test_no_total_is_a_failed_check() -> None:
    r = parse_receipt("HELLO WORLD\nNOTHING TO SEE")
    assert r.total is None
    assert [c.name for c in r.checks if c.passed is False] == ["total_found"]


@pytest.mark.parametrize(
    ("text", "iso", "ambiguous"),
    [
        ("25/12/2018 8:13:39 PM", "2018-12-25", False),
        ("15-01-2019", "2019-01-15", False),
        ("12/28/2017", "2017-12-28", False),
        ("2017-12-28", "2017-12-28", False),
        ("14 MAR 2025", "2025-03-14", False),
        ("05 MAC 18", "2018-03-05", False),
        ("Jan 5, 2024", "2024-01-05", False),
        ("02/03/19", "2019-03-02", True),
        ("25/12/2O18", "2018-12-25", False),
    ],
)
def test_dates(text: str, iso: str, ambiguous: bool) -> None:
    found = find_dates(text)[0]
    assert (found.date.isoformat(), found.ambiguous) == (iso, ambiguous)
    assert find_dates("02/03/19", month_first=True)[0].date.isoformat() == "2019-02-03"


def test_damaged_dates_and_times() -> None:
    assert str(find_date_loosely("05/0 1/2018").date) == "2018-01-05"  # type: ignore[union-attr]
    assert str(find_date_loosely("1506/2018").date) == "2018-06-15"  # type: ignore[union-attr]
    assert find_date_loosely("Tel 03-61855688") is None
    assert find_time("8:13:39 PM") == "20:13:39"
    assert find_time("22:17PM") == "22:17"
    assert find_time("1.50 2.00") is None


def test_amounts() -> None:
    assert parse_amount("RM 9.00") == Decimal("9.00")
    assert parse_amount("1.234,56") == Decimal("1234.56")
    assert parse_amount("5.00-") == Decimal("-5.00")
    assert parse_amount("CHANGE .40") == Decimal("0.40")
    assert [a for a, _p, _i in amounts_in("2 x 1.85 3.70")] == [Decimal("1.85"), Decimal("3.70")]
    assert normalise_spacing("2 15.00") == "2 15.00"
    assert normalise_spacing("1 5 . 0 0") == "15.00"


US_LABEL = """\
Nutrition Facts
8 servings per container
Serving size 2/3 cup (55g)
Amount per serving
Calories 230
% Daily Value*
Total Fat 8g 10%
Saturated Fat lg 5%
Trans Fat Og
Cholesterol Omg 0%
Sodium 160mg 7%
Total Carbohydrate 37g 13%
Dietary Fiber 4g 14%
Total Sugars 12g
Includes 10g Added Sugars 20%
Protein 3g
Vitamin D 2mcg 10%
Calcium 260mg 20%
Iron 8mg 45%
Potassium 235mg 6%
INGREDIENTS: WHOLE GRAIN OATS, SUGAR, CANOLA OIL (WITH TBHQ, FOR FRESHNESS),
ALMONDS, HONEY, SALT.
CONTAINS: ALMONDS, SOY.
"""


def test_serving_size_cut_off_at_the_edge_drops_the_open_parenthesis() -> None:
    label = parse_nutrition("Nutrition Facts\n3 servings per container\nServing size 2/3 cup (14\nCalories 350")
    assert label.serving_size == "2/3 cup" and label.servings_per_container == 3


def test_us_nutrition_facts() -> None:
    label = parse_nutrition(US_LABEL)
    assert label.panel == "nutrition_facts" and label.basis == "per serving"
    assert label.serving_size == "2/3 cup (55g)" and label.servings_per_container == 8 and label.calories == 230
    n = label.nutrients
    assert (n["total_fat"].amount, n["total_fat"].unit, n["total_fat"].dv_percent) == (8, "g", 10)
    assert n["saturated_fat"].amount == 1, "'lg' is 1g"
    assert n["trans_fat"].amount == 0 and n["cholesterol"].amount == 0, "'Og'/'Omg' are zero"
    assert n["added_sugars"].amount == 10 and n["vitamin_d"].unit == "mcg"
    assert set(n) >= {"total_fat", "saturated_fat", "trans_fat", "cholesterol", "sodium", "total_carbohydrate",
                      "dietary_fiber", "total_sugars", "added_sugars", "protein", "vitamin_d", "calcium", "iron",
                      "potassium"}
    assert label.ingredients == ["WHOLE GRAIN OATS", "SUGAR", "CANOLA OIL (WITH TBHQ, FOR FRESHNESS)", "ALMONDS",
                                 "HONEY", "SALT"]
    assert label.allergens == ["ALMONDS", "SOY"]
    assert all(c.passed for c in label.checks), [c.detail for c in label.checks if not c.passed]
    data = label.to_json_dict()
    assert data["nutrients"]["total_fat"] == {"amount": "8", "unit": "g", "dv_percent": "10", "less_than": False,
                                              "printed": "Total Fat 8g 10%"}


def test_nutrition_checks_catch_wrong_numbers() -> None:
    wrong_dv = parse_nutrition(US_LABEL.replace("Sodium 160mg 7%", "Sodium 160mg 70%"))
    assert [c.name for c in wrong_dv.checks if not c.passed] == ["dv_sodium"]
    wrong_kcal = parse_nutrition(US_LABEL.replace("Calories 230", "Calories 530"))
    assert [c.name for c in wrong_kcal.checks if not c.passed] == ["calories"]


def test_g_read_as_9_is_fixed_by_the_daily_value() -> None:
    label = parse_nutrition("Nutrition Facts\nTotal Fat 99 12%\nDietary Fiber 19 4%\nSaturated Fat 8g 15%")
    assert label.nutrients["total_fat"].amount == 9
    assert label.nutrients["dietary_fiber"].amount == 1
    assert label.nutrients["saturated_fat"].amount == 3, "an 8 that the 15% DV says is a 3"
    assert len(label.warnings) == 3


def test_eu_table_and_supplement_facts() -> None:
    eu = parse_nutrition("Nutrition per 100g\nEnergy 1046kJ / 250kcal\nFat 8.0g\nof which saturates 1.2g\n"
                         "Carbohydrate 37g\nof which sugars 12g\nFibre 4.1g\nProtein 3.5g\nSalt 0.40g")
    assert eu.panel == "eu_table" and eu.basis == "per 100 g"
    assert (eu.calories, eu.energy_kj) == (250, 1046)
    assert eu.nutrients["saturated_fat"].amount == Decimal("1.2") and eu.nutrients["salt"].amount == Decimal("0.40")
    supp = parse_nutrition("Supplement Facts\nServing Size 1 Capsule\nAmount Per Serving %DV\n"
                           "Vitamin C (as ascorbic acid) 500 mg 556%\nZinc 11 mg 100%\nProprietary Blend 250 mg\n"
                           "Elderberry, Echinacea\nOther ingredients: gelatin, rice flour.")
    assert supp.panel == "supplement_facts"
    assert supp.active_ingredients["vitamin_c"].amount == 500
    assert supp.proprietary_blends == {"Proprietary Blend": ["Elderberry", "Echinacea"]}
    assert supp.other_ingredients == ["gelatin", "rice flour"]


def test_generic_and_kind_detection() -> None:
    doc = parse_generic("Batch: 2231A\nExpiry = 2026-10\nStore below 25C")
    assert [(f.key, f.value) for f in doc.fields] == [("Batch", "2231A"), ("Expiry", "2026-10")]
    assert detect_kind(RECEIPT) == "receipt"
    assert detect_kind(US_LABEL) == "nutrition"
    assert detect_kind("Batch: 2231A\nStore below 25C") == "generic"


def test_edited_json_is_validated_and_rechecked() -> None:
    r = parse_receipt(RECEIPT.replace("SUB TOTAL 9.35", "SUB TOTAL 9.53"))
    data = r.to_json_dict()
    data["subtotal"] = "9.35"  # the person corrects the misread subtotal
    fixed = load_document(data)
    assert all(c.passed for c in fixed.checks)
    with pytest.raises(ValueError, match="kind"):
        load_document({"total": "1"})
    with pytest.raises(ValueError):
        load_document({**data, "total": "not a number"})


# --- images --------------------------------------------------------------------------------------


def _variant(img: Image.Image, how: str) -> Image.Image:
    if how == "rotated":
        return img.rotate(3, expand=True, fillcolor="white")
    if how == "blurred":
        return img.filter(ImageFilter.GaussianBlur(1.2))
    if how == "low-contrast":
        return img.point(lambda v: 150 + v * 80 // 255)
    if how == "small":
        return img.resize((img.width * 2 // 3, img.height * 2 // 3))
    return img


@needs_ocr
@pytest.mark.ocr
@pytest.mark.parametrize("how", ["plain", "rotated", "blurred", "low-contrast", "small"])
def test_rendered_receipt(how: str, tmp_path: Path) -> None:
    path = tmp_path / f"receipt-{how}.png"
    with Image.open(ASSETS / "receipt.png") as original:
        _variant(original.convert("RGB"), how).save(path)
    r = extract(path, kind="receipt")
    assert str(r.total) == "15.96", r.transcription
    assert r.date == "2025-03-14"
    assert str(r.subtotal) == "15.20" and str(r.change) == "4.04"


@needs_ocr
@pytest.mark.ocr
def test_rendered_label_and_auto_kind() -> None:
    label = extract(ASSETS / "nutrition_label.png")
    assert label.kind == "nutrition"
    assert label.calories == 230 and label.servings_per_container == 8
    assert label.nutrients["sodium"].amount == 160 and label.nutrients["total_fat"].dv_percent == 10
    assert label.allergens == ["ALMONDS", "SOY"]


@needs_ocr
@pytest.mark.ocr
def test_no_text_and_all_black(tmp_path: Path) -> None:
    p = tmp_path / "black.png"
    Image.new("RGB", (400, 300), "black").save(p)
    doc = extract(p, kind="receipt")
    assert doc.total is None and "no text found" in doc.warnings


SROIE = SHARED_DATA / "sroie"


@pytest.mark.skipif(not SROIE.is_dir(), reason="../shared/data/sroie is not beside this checkout")
@pytest.mark.skipif(not has_rapidocr(), reason="RapidOCR (the 'ocr' extra) is not installed")
@pytest.mark.slow
@pytest.mark.parametrize("name", ["000", "013", "152", "164", "391"])
def test_real_sroie_receipts(name: str) -> None:
    key = json.loads((SROIE / "key" / f"{name}.json").read_text())
    r = extract(SROIE / "img" / f"{name}.jpg", kind="receipt")
    assert f"{r.total:.2f}" == key["total"].removeprefix("RM")
    printed = find_dates(key["date"]) or [find_date_loosely(key["date"] + " 00:00")]  # "25032018" in one key
    assert r.date == printed[0].date.isoformat()  # type: ignore[union-attr]


@pytest.mark.skipif(not has_rapidocr(), reason="RapidOCR (the 'ocr' extra) is not installed")
@pytest.mark.ocr
def test_pip_only_machine_without_tesseract(monkeypatch: pytest.MonkeyPatch) -> None:
    """The done-when of the label issue: extraction works with only pip packages (RapidOCR)."""
    import vision.ocr.engines as engines

    monkeypatch.setattr(engines.shutil, "which", lambda _name: None)
    engines._build.cache_clear()
    try:
        assert engines.available_engines() == ["rapidocr"]
        receipt = extract(ASSETS / "receipt.png")
        assert (receipt.kind, str(receipt.total), receipt.engine) == ("receipt", "15.96", "rapidocr")
        label = extract(ASSETS / "nutrition_label.png")
        assert label.kind == "nutrition" and label.calories == 230
    finally:
        engines._build.cache_clear()
