"""Nutrition labels (US Nutrition Facts, EU per-100 g tables) and Supplement Facts panels.

Each nutrient comes with its amount, unit and %DV as printed, in snake_case names
(``total_fat``, ``saturated_fat``, ``sodium``...); ingredients and allergens as lists; and checks:
%DV consistent with the FDA daily values, and calories roughly 9 x fat + 4 x carbohydrate +
4 x protein.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field
from rapidfuzz import fuzz

from ..ocr.result import OcrResult
from .base import Check, Document, Evidence, Line, lines_of

# FDA daily values for adults and children 4+ (21 CFR 101.9), in the unit labels print.
DAILY_VALUES: dict[str, tuple[Decimal, str]] = {
    "total_fat": (Decimal(78), "g"), "saturated_fat": (Decimal(20), "g"), "cholesterol": (Decimal(300), "mg"),
    "sodium": (Decimal(2300), "mg"), "total_carbohydrate": (Decimal(275), "g"),
    "dietary_fiber": (Decimal(28), "g"), "added_sugars": (Decimal(50), "g"), "protein": (Decimal(50), "g"),
    "vitamin_d": (Decimal(20), "mcg"), "calcium": (Decimal(1300), "mg"), "iron": (Decimal(18), "mg"),
    "potassium": (Decimal(4700), "mg"), "vitamin_a": (Decimal(900), "mcg"), "vitamin_c": (Decimal(90), "mg"),
    "vitamin_e": (Decimal(15), "mg"), "vitamin_k": (Decimal(120), "mcg"), "thiamin": (Decimal("1.2"), "mg"),
    "riboflavin": (Decimal("1.3"), "mg"), "niacin": (Decimal(16), "mg"), "vitamin_b6": (Decimal("1.7"), "mg"),
    "folate": (Decimal(400), "mcg"), "vitamin_b12": (Decimal("2.4"), "mcg"), "biotin": (Decimal(30), "mcg"),
    "pantothenic_acid": (Decimal(5), "mg"), "phosphorus": (Decimal(1250), "mg"), "iodine": (Decimal(150), "mcg"),
    "magnesium": (Decimal(420), "mg"), "zinc": (Decimal(11), "mg"), "selenium": (Decimal(55), "mcg"),
    "copper": (Decimal("0.9"), "mg"), "manganese": (Decimal("2.3"), "mg"), "chromium": (Decimal(35), "mcg"),
    "molybdenum": (Decimal(45), "mcg"), "chloride": (Decimal(2300), "mg"), "choline": (Decimal(550), "mg"),
}

# Printed names (US and EU wording) -> snake_case name. Order matters: longer, more specific first.
NUTRIENT_NAMES: list[tuple[str, str]] = [
    ("saturated fat", "saturated_fat"), ("sat. fat", "saturated_fat"), ("of which saturates", "saturated_fat"),
    ("saturates", "saturated_fat"), ("trans fat", "trans_fat"), ("polyunsaturated fat", "polyunsaturated_fat"),
    ("monounsaturated fat", "monounsaturated_fat"), ("total fat", "total_fat"), ("fat", "total_fat"),
    ("cholesterol", "cholesterol"), ("sodium", "sodium"), ("salt", "salt"),
    ("total carbohydrate", "total_carbohydrate"), ("total carb.", "total_carbohydrate"),
    ("carbohydrate", "total_carbohydrate"), ("dietary fiber", "dietary_fiber"), ("dietary fibre", "dietary_fiber"),
    ("fibre", "dietary_fiber"), ("fiber", "dietary_fiber"), ("includes added sugars", "added_sugars"),
    ("added sugars", "added_sugars"), ("total sugars", "total_sugars"), ("of which sugars", "total_sugars"),
    ("sugars", "total_sugars"), ("sugar alcohol", "sugar_alcohol"), ("protein", "protein"),
    ("vitamin d", "vitamin_d"), ("vitamin a", "vitamin_a"), ("vitamin c", "vitamin_c"), ("vitamin e", "vitamin_e"),
    ("vitamin k", "vitamin_k"), ("vitamin b6", "vitamin_b6"), ("vitamin b12", "vitamin_b12"),
    ("thiamin", "thiamin"), ("riboflavin", "riboflavin"), ("niacin", "niacin"), ("folate", "folate"),
    ("folic acid", "folate"), ("biotin", "biotin"), ("pantothenic acid", "pantothenic_acid"),
    ("calcium", "calcium"), ("iron", "iron"), ("potassium", "potassium"), ("phosphorus", "phosphorus"),
    ("iodine", "iodine"), ("magnesium", "magnesium"), ("zinc", "zinc"), ("selenium", "selenium"),
    ("copper", "copper"), ("manganese", "manganese"), ("chromium", "chromium"), ("molybdenum", "molybdenum"),
    ("chloride", "chloride"), ("choline", "choline"), ("caffeine", "caffeine"),
]
_UNITS = {"g": "g", "mg": "mg", "mcg": "mcg", "µg": "mcg", "ug": "mcg", "kcal": "kcal", "kj": "kJ", "iu": "IU",
          "ml": "ml"}
_AMOUNT = re.compile(r"(?P<lt><\s*)?(?P<num>\d+(?:[.,]\d+)?)\s?(?P<unit>mcg|µg|ug|mg|kcal|kj|iu|ml|g)(?![a-z])", re.I)
_DV = re.compile(r"(\d{1,4})\s?%")
_ALLERGENS = ("milk", "egg", "eggs", "fish", "shellfish", "crustacean", "tree nuts", "almonds", "walnuts", "cashews",
              "pecans", "hazelnuts", "pistachios", "peanuts", "peanut", "wheat", "gluten", "soy", "soybeans", "sesame",
              "mustard", "celery", "lupin", "molluscs", "sulphites", "sulfites", "coconut")


class Nutrient(BaseModel):
    amount: Decimal | None = None
    unit: str | None = None
    dv_percent: Decimal | None = None
    less_than: bool = False
    printed: str = ""


class BlendIngredient(BaseModel):
    name: str


class NutritionLabel(Document):
    """A nutrition or supplement label. ``basis`` is "per serving" (US) or "per 100 g" (EU)."""

    kind: Literal["nutrition"] = "nutrition"
    panel: Literal["nutrition_facts", "supplement_facts", "eu_table"] = "nutrition_facts"
    basis: str = "per serving"
    serving_size: str | None = None
    servings_per_container: Decimal | None = None
    calories: Decimal | None = None
    energy_kj: Decimal | None = None
    nutrients: dict[str, Nutrient] = Field(default_factory=dict)
    active_ingredients: dict[str, Nutrient] = Field(default_factory=dict)
    proprietary_blends: dict[str, list[str]] = Field(default_factory=dict)
    ingredients: list[str] = Field(default_factory=list)
    other_ingredients: list[str] = Field(default_factory=list)
    allergens: list[str] = Field(default_factory=list)
    may_contain: list[str] = Field(default_factory=list)

    def run_checks(self) -> list[Check]:
        return nutrition_checks(self)


_DIGITISH = str.maketrans({"O": "0", "o": "0", "l": "1", "I": "1", "i": "1", "|": "1"})


def _clean(text: str) -> str:
    """Undo the OCR confusions that matter on labels: ``Og`` -> ``0g``, ``lig`` -> ``11g``,
    ``Omog`` -> ``0mcg``, ``(869)`` -> ``(86g)``."""
    text = text.replace("|", " ").replace("_", " ")
    text = re.sub(r"\b(\d+(?:[.,]\d+)?)\s?m[oe]g\b", r"\1mcg", text)
    text = re.sub(r"(?<![A-Za-z])([0-9OolIi.]*[0-9OolIi])(?=\s?(?:mg|mcg|g)\b)",
                  lambda m: m.group(1).translate(_DIGITISH), text)
    text = re.sub(r"(?<![A-Za-z])[Oo](?=m[oe]g\b)", "0", text)
    text = re.sub(r"\((\d+)9\)", r"(\1g)", text)
    text = re.sub(r"(?<=\d)[Oo](?=\d|%)", "0", text)
    text = re.sub(r"\blron\b", "Iron", text)
    return " ".join(text.split())


def _find_squeezed(low: str, printed: str) -> int | None:
    """Where ``printed`` ends in ``low`` when spaces may be missing ("saturatedfat6g"), or None."""
    target = printed.replace(" ", "")
    squeezed, index = [], []
    for i, ch in enumerate(low):
        if ch != " ":
            squeezed.append(ch)
            index.append(i)
    pos = "".join(squeezed).find(target)
    if pos == -1 or index[pos] > 20:
        return None
    return index[pos + len(target) - 1] + 1


def _match_name(text: str) -> tuple[str, int] | None:
    """The nutrient a line starts with (fuzzy: OCR spelling slips allowed), and where its name ends."""
    low = text.lower()
    for printed, name in NUTRIENT_NAMES:
        end = _find_squeezed(low, printed)
        if end is not None:
            return name, end
    words = re.findall(r"[a-z][a-z.]+", low)[:4]
    best = None
    for printed, name in NUTRIENT_NAMES:
        n = len(printed.split())
        candidate = " ".join(words[:n])
        if len(candidate) >= 4 and fuzz.ratio(candidate, printed) >= 86:
            score = fuzz.ratio(candidate, printed)
            if best is None or score > best[0]:
                best = (score, name, low.find(candidate) + len(candidate))
    return (best[1], best[2]) if best else None


_CONFUSED = {"3": "8", "8": "3", "5": "6", "6": "5", "0": "8", "1": "7", "7": "1", "4": "1"}


def _agree_with_dv(name: str, nutrient: Nutrient, raw_number: str) -> tuple[Nutrient, str | None]:
    """When the amount and the %DV disagree, try the amount as OCR might have misread it (a ``g``
    read as ``9``, a 3 read as an 8) and keep the reading the %DV confirms."""
    dv = DAILY_VALUES.get(name)
    if dv is None or nutrient.dv_percent is None or nutrient.amount is None or nutrient.unit not in (dv[1], None):
        return nutrient, None

    def fits(amount: Decimal) -> bool:
        return dv_agrees(amount / dv[0] * 100, nutrient.dv_percent)  # type: ignore[arg-type]

    if fits(nutrient.amount):
        return nutrient, None
    candidates = []
    if raw_number.endswith("9") and len(raw_number) > 1 and nutrient.unit is None:
        candidates.append(raw_number[:-1])  # "99" is "9g"
    for i, ch in enumerate(raw_number):
        if ch in _CONFUSED:
            candidates.append(raw_number[:i] + _CONFUSED[ch] + raw_number[i + 1:])
    for cand in candidates:
        try:
            value = Decimal(cand)
        except ArithmeticError:
            continue
        if fits(value):
            fixed = nutrient.model_copy(update={"amount": value, "unit": dv[1]})
            return fixed, f"{name}: read {raw_number} but the {nutrient.dv_percent}% daily value fits {value}{dv[1]}"
    return nutrient, None


def parse_nutrition(source: OcrResult | str | list[str]) -> NutritionLabel:
    """A :class:`NutritionLabel` from OCR output (or its text)."""
    lines = lines_of(source)
    cleaned = [Line(_clean(ln.text), ln.index, ln.page, ln.box, ln.confidence) for ln in lines]
    text = "\n".join(ln.text for ln in cleaned)
    label = NutritionLabel(transcription=text)
    evidence: dict[str, list[Evidence]] = {}
    low = text.lower()
    if "supplement facts" in low or fuzz.partial_ratio("supplement facts", low) >= 90:
        label.panel = "supplement_facts"
    elif re.search(r"per\s*100\s*(g|ml)", low) or "of which" in low or ("energy" in low and "kj" in low):
        label.panel = "eu_table"
        label.basis = "per 100 g" if "100 g" in low or "100g" in low else "per 100 ml"

    for i, ln in enumerate(cleaned):
        t = ln.text
        tl = t.lower()
        if label.serving_size is None and re.search(r"serving\s*size", tl):
            rest = re.split(r"serving\s*size", t, flags=re.I)[1].strip(" :")
            if not rest and i + 1 < len(cleaned):
                rest = cleaned[i + 1].text
            # a parenthesis left open at the end is print cut off at the photo's edge ("2/3 cup (14")
            rest = re.sub(r"\s*\([^)]*$", "", rest).strip()
            label.serving_size = rest or None
            evidence["serving_size"] = [ln.evidence()]
            continue
        if label.servings_per_container is None:
            m = re.search(r"(?:about\s+)?(\d+(?:[.,]\d+)?)\s*servings?\s*per\s*(?:container|package|pack)", tl) or \
                re.search(r"servings?\s*per\s*(?:container|package|pack)\s*:?\s*(?:about\s+)?(\d+(?:[.,]\d+)?)", tl)
            if m:
                label.servings_per_container = Decimal(m.group(1).replace(",", "."))
                evidence["servings_per_container"] = [ln.evidence()]
                continue
        if label.calories is None and re.search(r"\bcalories\b|\benergy\b", tl) and "from fat" not in tl:
            nums = re.findall(r"(\d+(?:[.,]\d+)?)\s*(kcal|kj)?", t, re.I)
            kcal = [n for n, u in nums if u.lower() == "kcal"]
            kj = [n for n, u in nums if u.lower() == "kj"]
            plain = [n for n, u in nums if not u]
            if kj:
                label.energy_kj = Decimal(kj[0].replace(",", "."))
            value = kcal[0] if kcal else (plain[0] if plain and not kj else None)  # per serving comes first
            if value is None and i + 1 < len(cleaned) and re.fullmatch(r"\d{1,4}", cleaned[i + 1].text.strip()):
                value = cleaned[i + 1].text.strip()
            if value is not None:
                label.calories = Decimal(value.replace(",", "."))
                evidence["calories"] = [ln.evidence()]
                continue
        if re.match(r"\s*(other\s+)?ingredients?\b", tl) or re.match(r"\s*contains\b|\s*may contain\b", tl):
            continue
        named = _match_name(t)
        if named is None:
            continue
        name, end = named
        rest = t[end:]
        amount = _AMOUNT.search(rest)
        if amount is None and (before := _AMOUNT.search(t[:end])):  # "Includes 10g Added Sugars 20%"
            amount, rest = before, t[before.start():]
            rest = rest[: before.end() - before.start()] + t[end:]
            amount = _AMOUNT.search(rest)
        bare = None if amount else re.match(r"\s*(\d+(?:[.,]\d+)?)(?=\s|$)(?!\s*%)", rest)
        dv = _DV.search(rest[(amount or bare).end():] if (amount or bare) else rest)
        if amount is None and dv is None and bare is None:
            continue
        nutrient = Nutrient(printed=t)
        raw_number = ""
        if amount:
            raw_number = amount.group("num")
            nutrient.amount = Decimal(raw_number.replace(",", "."))
            nutrient.unit = _UNITS[amount.group("unit").lower()]
            nutrient.less_than = bool(amount.group("lt"))
        elif bare:  # "Total Fat 99 12%": the unit was misread as a digit
            raw_number = bare.group(1)
            nutrient.amount = Decimal(raw_number.replace(",", "."))
        if dv:
            nutrient.dv_percent = Decimal(dv.group(1))
        nutrient, note = _agree_with_dv(name, nutrient, raw_number)
        if note:
            label.warnings.append(note)
        if nutrient.unit is None and nutrient.amount is not None:
            unit_guess = DAILY_VALUES.get(name, (None, "g"))[1]
            if raw_number.endswith("9") and len(raw_number) > 1 and unit_guess == "g":
                nutrient.amount = Decimal(raw_number[:-1].replace(",", "."))
                label.warnings.append(f"{name}: read {raw_number} as {raw_number[:-1]}g (a g looks like a 9)")
            nutrient.unit = unit_guess
        target = label.active_ingredients if label.panel == "supplement_facts" and name not in {
            "total_fat", "total_carbohydrate", "protein", "sodium", "total_sugars", "calories"} else label.nutrients
        if name not in target or (target[name].amount is None and nutrient.amount is not None):
            target[name] = nutrient
            evidence.setdefault(name, []).append(ln.evidence())

    label.ingredients, label.other_ingredients = _ingredients(cleaned)
    label.allergens, label.may_contain = _allergens(cleaned)
    label.proprietary_blends = _blends(cleaned)
    label.finish(source, evidence)
    return label


def split_list(text: str) -> list[str]:
    """Split an ingredient list on commas and semicolons outside brackets."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        if ch in ",;" and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    items = [" ".join(x.split()).strip(" .:*") for x in out]
    return [x for x in items if x and any(c.isalpha() for c in x)]


_SECTION_END = re.compile(r"^\s*(contains|may contain|allergen|distributed|manufactured|made in|produced|"
                          r"store|keep|best before|nutrition facts|supplement facts|www\.|\d{5})", re.I)


def _section(lines: list[Line], start_pattern: str) -> str | None:
    for i, ln in enumerate(lines):
        m = re.search(start_pattern, ln.text, re.I)
        if not m:
            continue
        parts = [ln.text[m.end():]]
        for nxt in lines[i + 1: i + 12]:
            if _SECTION_END.search(nxt.text) or re.search(r"ingredients?\s*:", nxt.text, re.I):
                break
            parts.append(nxt.text)
            if nxt.text.rstrip().endswith("."):
                break
        return " ".join(parts)
    return None


def _ingredients(lines: list[Line]) -> tuple[list[str], list[str]]:
    other = _section(lines, r"other\s+ingredients?\s*:?")
    main = _section(lines, r"(?<!other )\bingredients?\s*:")
    if main is not None and other is not None and main.strip() == other.strip():
        main = None
    return (split_list(main) if main else [], split_list(other) if other else [])


def _allergens(lines: list[Line]) -> tuple[list[str], list[str]]:
    contains = _section(lines, r"\bcontains\s*:?")
    may = _section(lines, r"may\s+contain\s*:?|produced in a facility (?:that|which) (?:also )?(?:processes|handles)")
    return (split_list(contains) if contains else [], split_list(may) if may else [])


def _blends(lines: list[Line]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for i, ln in enumerate(lines):
        if re.search(r"proprietary\s+blend", ln.text, re.I):
            name = re.sub(r"\s*\d.*$", "", ln.text).strip()
            members: list[str] = []
            for nxt in lines[i + 1: i + 6]:
                if (_AMOUNT.search(nxt.text) or _DV.search(nxt.text) or _match_name(nxt.text)
                        or re.search(r"ingredients?", nxt.text, re.I) or _SECTION_END.search(nxt.text)):
                    break
                members += split_list(nxt.text)
            out[name] = members
    return out


def fda_rounded_dv(percent: Decimal) -> Decimal:
    """%DV as FDA rounding prints it for vitamins and minerals: nearest 2% up to 10%, nearest 5% up to
    50%, nearest 10% above (21 CFR 101.9(c)(8)(iii))."""
    step = Decimal(2) if percent <= 10 else Decimal(5) if percent <= 50 else Decimal(10)
    return (percent / step).quantize(Decimal(1)) * step


def dv_agrees(expected: Decimal, printed: Decimal) -> bool:
    """Whether a printed %DV fits the amount: amounts are rounded before %DV is computed, and
    vitamins and minerals use coarser steps, so allow both."""
    if printed == expected.quantize(Decimal(1)) or printed == fda_rounded_dv(expected):
        return True
    return abs(expected - printed) <= max(Decimal(2), expected * Decimal("0.12"))


def nutrition_checks(label: NutritionLabel) -> list[Check]:
    """%DV against the FDA daily values (within FDA rounding), and calories against 9/4/4."""
    out: list[Check] = []
    for name, n in label.nutrients.items():
        dv = DAILY_VALUES.get(name)
        if dv is None or n.amount is None or n.dv_percent is None or n.unit != dv[1] or label.basis != "per serving":
            continue
        expected = n.amount / dv[0] * 100
        ok = dv_agrees(expected, n.dv_percent)
        out.append(Check(name=f"dv_{name}", passed=ok, expected=f"{expected:.0f}%", found=f"{n.dv_percent}%",
                         detail=f"{name.replace('_', ' ')} {n.amount}{n.unit} is {expected:.0f}% of the "
                                f"{dv[0]}{dv[1]} daily value; the label says {n.dv_percent}%"))
    fat, carb, protein = (label.nutrients.get(k) for k in ("total_fat", "total_carbohydrate", "protein"))
    have = fat and carb and protein and None not in (fat.amount, carb.amount, protein.amount)
    if label.calories is not None and have:
        computed = 9 * fat.amount + 4 * carb.amount + 4 * protein.amount  # type: ignore[operator]
        fibre = label.nutrients.get("dietary_fiber")
        low = computed - 4 * (fibre.amount or 0 if fibre else 0) - 20  # fibre may not count; labels round
        ok = low * Decimal("0.8") <= label.calories <= computed * Decimal("1.2") + 10
        out.append(Check(name="calories", passed=ok, expected=f"about {computed:.0f}", found=str(label.calories),
                         detail=f"9 x {fat.amount} g fat + 4 x {carb.amount} g carbohydrate + 4 x {protein.amount} g "
                                f"protein = {computed:.0f} kcal; the label says {label.calories}"))
    return out
