"""A small valid instance of a JSON Schema, the same for the same schema and seed.

What the simulated model writes as a tool's ``input`` and as JSON-schema output:
every required property (and the optional ones, near the top), values inside their
bounds (lengths, ranges, item counts, enums, consts, formats), ``$ref`` to ``$defs``
followed, the first branch of ``anyOf``/``oneOf``, the objects of ``allOf`` merged.
A ``pattern`` cannot be satisfied in general: the value tries a few plain strings and
keeps the first that matches, else the first.
"""

from __future__ import annotations

import math
import re
from typing import Any

_WORDS = ("alpha", "bravo", "delta", "echo", "kilo", "lima", "oscar", "tango")
_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00Z",
    "email": "sim@example.com",
    "uri": "https://example.com/sim",
    "url": "https://example.com/sim",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
}
#: Below this depth optional properties are left out, so recursive schemas end.
_OPTIONAL_DEPTH = 3
_MAX_DEPTH = 24


def instance(schema: Any, seed: int = 0) -> Any:
    """A value valid against ``schema`` (a dict, or True/False as JSON Schema allows)."""
    root = schema if isinstance(schema, dict) else {}
    return _value(schema, root, seed, 0)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 32:
        ref = schema["$ref"]
        target: Any = root
        if isinstance(ref, str) and ref.startswith("#"):
            for part in ref[1:].split("/"):
                if part and isinstance(target, dict):
                    target = target.get(part.replace("~1", "/").replace("~0", "~"), {})
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **rest} if isinstance(target, dict) else rest
        seen += 1
    return schema


def _value(schema: Any, root: dict[str, Any], seed: int, depth: int) -> Any:
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None if depth > _MAX_DEPTH else {}
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][seed % len(schema["enum"])]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            base = {k: v for k, v in schema.items() if k != key}
            return _value({**base, **_resolve(options[0], root)}, root, seed, depth + 1)
    if isinstance(schema.get("allOf"), list):
        return _value(_merge(schema, root), root, seed, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if kind is None:
        kind = _guess(schema)
    if kind == "object":
        return _object(schema, root, seed, depth)
    if kind == "array":
        return _array(schema, root, seed, depth)
    if kind == "string":
        return _string(schema, seed)
    if kind in ("integer", "number"):
        return _number(schema, seed, kind == "integer")
    if kind == "boolean":
        return seed % 2 == 0
    if kind == "null":
        return None
    return {}


def _guess(schema: dict[str, Any]) -> str:
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if {"minLength", "maxLength", "pattern", "format"} & set(schema):
        return "string"
    if {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & set(schema):
        return "number"
    return "object"


def _merge(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        part = _resolve(part, root) if isinstance(part, dict) else {}
        for key, value in part.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required":
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _object(schema: dict[str, Any], root: dict[str, Any], seed: int, depth: int) -> Any:
    found = schema.get("properties")
    props: dict[str, Any] = found if isinstance(found, dict) else {}
    required = [r for r in schema.get("required", []) if isinstance(r, str)]
    names = list(props) if depth < _OPTIONAL_DEPTH else []
    names += [r for r in required if r not in names]
    out: dict[str, Any] = {}
    for i, name in enumerate(names):
        out[name] = _value(props.get(name, {}), root, seed + 7 * i + 1, depth + 1)
    least = schema.get("minProperties")
    extra = schema.get("additionalProperties", True)
    while isinstance(least, int) and len(out) < least and extra is not False:
        out[f"{_WORDS[len(out) % len(_WORDS)]}_{len(out)}"] = _value(
            extra if isinstance(extra, dict) else {"type": "string"}, root, seed, depth + 1
        )
    return out


def _array(schema: dict[str, Any], root: dict[str, Any], seed: int, depth: int) -> list[Any]:
    found = schema.get("prefixItems")
    prefix: list[Any] = found if isinstance(found, list) else []
    items = schema.get("items", {})
    least = schema.get("minItems", 1 if depth < _OPTIONAL_DEPTH else 0)
    most = schema.get("maxItems")
    n = max(int(least), len(prefix) if least else 0)
    if isinstance(most, int):
        n = min(n, most)
    out = []
    for i in range(n):
        sub = prefix[i] if i < len(prefix) else items
        value = _value(sub if sub is not False else {}, root, seed + 13 * i, depth + 1)
        if schema.get("uniqueItems") and value in out:
            value = _value(sub, root, seed + 13 * i + 1000, depth + 1)
        out.append(value)
    return out


def _string(schema: dict[str, Any], seed: int) -> str:
    fmt = schema.get("format")
    text = _FORMATS.get(fmt, "") if isinstance(fmt, str) else ""
    text = text or _WORDS[seed % len(_WORDS)]
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        text = _matching(pattern, text)
    least, most = schema.get("minLength"), schema.get("maxLength")
    if isinstance(least, int) and len(text) < least:
        text = (text * (least // len(text) + 1))[:least]
    if isinstance(most, int) and len(text) > most:
        text = text[:most]
    return text


def _matching(pattern: str, fallback: str) -> str:
    try:
        compiled = re.compile(pattern)
    except re.error:
        return fallback
    for candidate in (fallback, "a", "A", "0", "sim", "abc", "a1", "2026-01-01", "x@example.com"):
        if compiled.search(candidate):
            return candidate
    return fallback


def _number(schema: dict[str, Any], seed: int, integer: bool) -> int | float:
    low, high = schema.get("minimum"), schema.get("maximum")
    ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    step = schema.get("multipleOf")
    lo = -math.inf if low is None else float(low)
    hi = math.inf if high is None else float(high)
    if isinstance(ex_low, int | float) and not isinstance(ex_low, bool):
        lo = max(lo, float(ex_low) + (1 if integer else 1e-6))
    if isinstance(ex_high, int | float) and not isinstance(ex_high, bool):
        hi = min(hi, float(ex_high) - (1 if integer else 1e-6))
    value = float(seed % 10) if lo <= seed % 10 <= hi else (lo if lo > -math.inf else hi)
    if isinstance(step, int | float) and step > 0:
        value = math.ceil(value / step) * step
        if value > hi:
            value -= step
    if integer:
        whole = math.ceil(value)
        return int(whole if whole <= hi else math.floor(hi))
    return value
