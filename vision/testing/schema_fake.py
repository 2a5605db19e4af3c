"""Deterministic instances of a JSON schema, for structured-output requests to the fake server.

The value depends on the model name and the path in the document, so two models answer
differently (as council members should) while one model always answers the same. Arrays of enum
items with ``uniqueItems`` come out as a permutation of the enum (a valid ranking).
"""

from __future__ import annotations

import hashlib
from typing import Any


def _pick(seed: str, n: int) -> int:
    return int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16) % max(1, n)


def instance(schema: dict[str, Any], *, model: str, path: str = "$", defs: dict[str, Any] | None = None) -> Any:
    """A value valid against ``schema`` (the subset structured outputs use)."""
    defs = defs if defs is not None else {**schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return instance(defs.get(name, {}), model=model, path=path, defs=defs)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return instance(options[0], model=model, path=path, defs=defs)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for sub in schema["allOf"]:
            merged.update(sub)
        return instance(merged, model=model, path=path, defs=defs)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][_pick(f"{model}{path}", len(schema["enum"]))]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: instance(v, model=model, path=f"{path}.{k}", defs=defs) for k, v in props.items()}
    if kind == "array":
        items = schema.get("items", {})
        if isinstance(items, dict) and "$ref" in items:
            items = defs.get(items["$ref"].rsplit("/", 1)[-1], {})
        if isinstance(items, dict) and "enum" in items and schema.get("uniqueItems"):
            pool = list(items["enum"])
            order = sorted(pool, key=lambda v: hashlib.sha256(f"{model}{path}{v}".encode()).hexdigest())
            return order[: schema.get("maxItems", len(order))]
        count = max(schema.get("minItems", 1), 1)
        return [instance(items, model=model, path=f"{path}[{i}]", defs=defs) for i in range(count)]
    if kind == "string":
        if "enum" in schema:
            return schema["enum"][0]
        fmt = schema.get("format")
        if fmt == "date":
            return "2025-03-14"
        if fmt == "date-time":
            return "2025-03-14T18:42:00Z"
        return f"{model} says {path.rsplit('.', 1)[-1]}"
    if kind == "integer":
        low = schema.get("minimum", 0)
        high = schema.get("maximum", low + 10)
        return int(low + _pick(f"{model}{path}", int(high - low) + 1))
    if kind == "number":
        low = schema.get("minimum", 0)
        return float(low) + _pick(f"{model}{path}", 100) / 10
    if kind == "boolean":
        return bool(_pick(f"{model}{path}", 2))
    return None
