"""Step 1 of the explain flow in a form: a document's fields as rows a person reads and corrects.

Each row is a field path (``merchant``, ``items[0].amount``, ``nutrients.sodium.dv_percent``,
``allergens[1]``), its value as text, and a note saying why it may need a look (words OCR doubted on
the line it came from, the text as printed). :func:`apply_rows` builds the corrected document from the
rows, validated and re-checked: a changed value is changed, a deleted row is removed, a row added with
a new path (``tax[0].label`` and ``tax[0].amount``) adds a field. :func:`to_csv` writes rows and checks.

>>> from vision.documents import parse_receipt
>>> doc = parse_receipt("SHOP\\nBread 2.50\\nMilk 1.20\\nTOTAL 3.70")
>>> [r.path for r in field_rows(doc) if r.value][:4]
['merchant', 'items[0].name', 'items[0].amount', 'items[1].name']
>>> rows = [r if r.path != "items[1].amount" else r.with_value("1.30") for r in field_rows(doc)]
>>> fixed = apply_rows(doc, rows)
>>> str(fixed.items[1].amount), [c.passed for c in fixed.checks]
('1.30', [False])
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from .base import Document

# Not for correcting: the transcription has its own box, the rest is bookkeeping.
META_FIELDS = ("kind", "transcription", "checks", "evidence", "low_confidence", "warnings", "source", "engine")
HIDDEN_KEYS = ("line", "printed")  # kept from the original (by position), shown in notes, never as rows
_TOKEN = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


@dataclass(frozen=True)
class FieldRow:
    """One field of a document as a form shows it."""

    path: str
    value: str
    note: str = ""

    def with_value(self, value: str) -> FieldRow:
        return replace(self, value=value)


def _key(name: str) -> str:
    return f".{name}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else f"[{json.dumps(name)}]"


def parse_path(path: str) -> list[str | int]:
    """``items[0].amount`` -> ``["items", 0, "amount"]``; keys that are not names are JSON strings in
    brackets (``proprietary_blends["Energy Blend"][0]``)."""
    path = path.strip()
    parts: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m or (pos == 0 and m.group(0).startswith(".")):
            raise ValueError(f"{path!r} is not a field path (like merchant, items[0].amount or tax[1].label)")
        name, index, quoted = m.groups()
        parts.append(name if name is not None else int(index) if index is not None else json.loads(quoted))
        pos = m.end()
    if not parts or not isinstance(parts[0], str):
        raise ValueError(f"{path!r} is not a field path (like merchant, items[0].amount or tax[1].label)")
    return parts


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _notes(doc: Document) -> tuple[dict[int, str], dict[str, list[int]]]:
    """Words OCR doubted, by line; and the lines each top-level field was read from."""
    doubted: dict[int, list[str]] = {}
    for w in doc.low_confidence:
        doubted.setdefault(w.line, []).append(f"{w.text!r} ({w.confidence:.0%})")
    by_line = {line: "OCR unsure of " + ", ".join(words) for line, words in doubted.items()}
    lines = {name: [e.line for e in ev] for name, ev in doc.evidence.items()}
    return by_line, lines


def field_rows(doc: Document) -> list[FieldRow]:
    """Every field of ``doc`` but the bookkeeping, in the model's order; empty fields included (to fill)."""
    data = doc.model_dump(mode="json", exclude=set(META_FIELDS))
    doubted, field_lines = _notes(doc)
    rows: list[FieldRow] = []

    def note_for(top: str, context: dict[str, Any] | None) -> str:
        notes = []
        if context and context.get("printed"):
            notes.append(f"printed: {context['printed']!r}")
        lines = [context["line"]] if context and isinstance(context.get("line"), int) else field_lines.get(top, [])
        notes += [doubted[n] for n in lines if n in doubted]
        return "; ".join(notes)

    def walk(value: Any, path: str, top: str, context: dict[str, Any] | None) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k not in HIDDEN_KEYS:
                    walk(v, path + _key(k), top, value if any(h in value for h in HIDDEN_KEYS) else context)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]", top, context)
        else:
            rows.append(FieldRow(path, _text(value), note_for(top, context)))

    for name, value in data.items():
        walk(value, name, name, None)
    return rows


def _set(tree: dict[Any, Any], parts: list[str | int], value: str) -> None:
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"{'.'.join(map(str, parts))}: a field cannot also hold other fields")
    if parts[-1] in node and isinstance(node[parts[-1]], dict):
        raise ValueError(f"{'.'.join(map(str, parts))}: give a value to each of its fields, not to it")
    node[parts[-1]] = value


def _build(node: Any, original: Any) -> Any:
    """Index-keyed dicts to lists (in index order, gaps closed, empty entries dropped); "" to None;
    hidden keys copied from the original element at the same position."""
    if not isinstance(node, dict):
        return None if node == "" else node
    if node and all(isinstance(k, int) for k in node):
        items = []
        for pos, (_, child) in enumerate(sorted(node.items())):
            orig = original[pos] if isinstance(original, list) and pos < len(original) else None
            built = _build(child, orig)
            if built is None or (isinstance(built, dict) and all(v is None for k, v in built.items()
                                                                 if k not in HIDDEN_KEYS)):
                continue
            items.append(built)
        return items
    out = {k: _build(v, original.get(k) if isinstance(original, dict) else None) for k, v in node.items()}
    if isinstance(original, dict):
        for hidden in HIDDEN_KEYS:
            if hidden in original and hidden not in out:
                out[hidden] = original[hidden]
    return out


def apply_rows(doc: Document, rows: list[FieldRow] | list[tuple[str, str]] | list[list[str]]) -> Document:
    """The document with its fields as ``rows`` say (rows as :class:`FieldRow` or ``(path, value)``
    pairs): validated and re-checked; ``doc`` itself is not changed. Raises ``ValueError`` naming the
    row that is wrong."""
    original = doc.model_dump(mode="json")
    editable = [k for k in original if k not in META_FIELDS]
    tree: dict[Any, Any] = {}
    for row in rows:
        path, value = (row.path, row.value) if isinstance(row, FieldRow) else (str(row[0] or ""), row[1])
        if not path.strip():
            if _text(value).strip():
                raise ValueError(f"the value {value!r} has no field name")
            continue
        parts = parse_path(path)
        if parts[0] not in editable:
            raise ValueError(f"{path}: a {doc.kind} has no field {parts[0]!r} "
                             f"(its fields: {', '.join(editable)})")
        _set(tree, parts, _text(value).strip())
    data = {k: v for k, v in original.items() if k in META_FIELDS}
    defaults = type(doc).model_fields
    for name in editable:
        if name in tree:
            data[name] = _build(tree[name], original.get(name))
            if data[name] is None and isinstance(original.get(name), (list, dict)):
                data[name] = [] if isinstance(original.get(name), list) else {}
        else:
            field = defaults[name]
            data[name] = field.get_default(call_default_factory=True)
    try:
        fixed = type(doc).model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{_path_of(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"some fields are not right: {problems}") from None
    fixed._ocr = doc.ocr
    return fixed.recheck()


def _path_of(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (_key(str(part)) if out else str(part))
    return out or "document"


def to_csv(doc: Document) -> str:
    """The fields and the checks as CSV: ``section,field,value,detail`` (section ``field`` or ``check``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "field", "value", "detail"])
    for row in field_rows(doc):
        writer.writerow(["field", row.path, row.value, row.note])
    for check in doc.checks:
        result = "passed" if check.passed else "failed" if check.passed is False else "not checked"
        writer.writerow(["check", check.name, result, check.detail])
    return out.getvalue()


__all__ = ["HIDDEN_KEYS", "META_FIELDS", "FieldRow", "apply_rows", "field_rows", "parse_path", "to_csv"]
