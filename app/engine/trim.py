"""Cut what an event carries to the sizes of `Limits`, deterministically.

The rule's predicates and the join key see the whole record at decode time; only what is
kept afterwards (in state, on the repartition topic, in the alert) is cut. Ordinary
records are never touched: the limits sit far above what shippers send.
"""

from __future__ import annotations

from typing import Any

import orjson

from app.engine.limits import Limits


def _cut(value: Any, chars: int) -> tuple[Any, bool]:
    if isinstance(value, str) and len(value) > chars:
        return value[:chars], True
    return value, False


def bound_fields(
    fields: dict[str, Any], keys: frozenset[str], limits: Limits
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Fields with strings cut to `field_chars`, arrays to `field_values` elements, and
    the non-key fields to `fields_bytes` in all (the largest dropped first); plus the
    paths that were cut or dropped. Join-key fields are already at most `key_chars`."""
    out: dict[str, Any] = {}
    trimmed: list[str] = []
    chars = limits.field_chars
    for path, value in fields.items():
        cut = False
        if isinstance(value, list):
            if len(value) > limits.field_values:
                value, cut = value[: limits.field_values], True
            items = []
            for item in value:
                item, shorter = _cut(item, chars)
                cut = cut or shorter
                items.append(item)
            value = items
        else:
            value, cut = _cut(value, chars)
        out[path] = value
        if cut:
            trimmed.append(path)
    if len(orjson.dumps(out)) > limits.fields_bytes:  # the key fields count too: cheap check
        sizes = {
            path: len(orjson.dumps({path: value}))
            for path, value in out.items()
            if path not in keys
        }
        total = sum(sizes.values())
        for path in sorted(sizes, key=lambda p: (-sizes[p], p)):
            if total <= limits.fields_bytes:
                break
            del out[path]
            if path not in trimmed:
                trimmed.append(path)
            total -= sizes[path]
    return out, tuple(sorted(trimmed))


def bound_original(doc: dict[str, Any], raw_bytes: int, limits: Limits) -> dict[str, Any] | None:
    """The record as received if it serialises to at most `original_bytes`, else None.

    orjson writes a parsed record back at most 4.5 times the size it was read from (a
    number like 1e15 becomes 1000000000000000.0), so small records need no measuring.
    """
    if raw_bytes * 5 <= limits.original_bytes:
        return doc
    return doc if len(orjson.dumps(doc)) <= limits.original_bytes else None
