"""An Elasticsearch index mapping, for the parts of it that change a query's answer.

Elasticsearch evaluates EQL against indexed fields: an `alias` field answers with its
target's value, a `null_value` stands in for an explicit null, a `version` field
compares as a software version (`1.11.3 > 1.5.0`, `1.2.4-SNAPSHOT < 1.2.4`), not as a
string, and a `date_nanos` `@timestamp` compares to the nanosecond. A stream has no
index, so by default seqwatch reads fields as ECS keyword and numeric fields behave;
`--mapping FILE` (the JSON of `GET <index>/_mapping`, an index template's `mappings`, or
just `{"properties": ...}`) makes it read them as that index would. Other field types
need nothing: ECS keyword, numeric and date fields already behave as seqwatch reads
them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from app.errors import ConfigError


@dataclass(frozen=True)
class Mapping:
    aliases: dict[str, str] = field(default_factory=dict)
    """alias path -> the path of the field it stands for"""
    null_values: dict[str, Any] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Mapping:
        try:
            lines = Path(path).read_bytes().splitlines()
            # Elasticsearch's own test mappings open with `#` comment lines.
            text = b"\n".join(ln for ln in lines if not ln.lstrip().startswith((b"#", b"//")))
            data = orjson.loads(text)
        except FileNotFoundError:
            raise ConfigError(f"--mapping {path}: no such file") from None
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"--mapping {path}: cannot read it: {exc}") from None
        properties = _properties(data)
        if properties is None:
            raise ConfigError(f"--mapping {path}: no `properties` (an Elasticsearch mapping)")
        mapping = cls()
        _walk(properties, "", mapping)
        return mapping

    @property
    def version_fields(self) -> frozenset[str]:
        return frozenset(p for p, t in self.types.items() if t == "version")

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        """`doc` as the index holds it: null_values in place of nulls, aliases filled.

        A copy where it changes (the record as received stays as it was: alerts report
        it); `doc` itself is returned when nothing applies."""
        out = doc
        for path, value in self.null_values.items():
            parent, leaf = _parent(out, path)
            if parent is not None and leaf in parent and parent[leaf] is None:
                out = _set(out, path if path in out else None, path.split("."), value)
        for alias, target in self.aliases.items():
            parent, leaf = _parent(out, target)
            if parent is None or leaf not in parent:
                continue
            held, name = _parent(out, alias)
            if held is not None and name in held:
                continue  # the record has the field itself
            out = _set(out, None, alias.split("."), parent[leaf])
        return out


def _set(doc: dict[str, Any], flat: str | None, parts: list[str], value: Any) -> dict[str, Any]:
    """A copy of `doc` with the field set (a dotted top-level key `flat`, else nested),
    copying only the objects on the way."""
    top = dict(doc)
    if flat is not None:
        top[flat] = value
        return top
    node = top
    for part in parts[:-1]:
        child = node.get(part)
        child = dict(child) if isinstance(child, dict) else {}
        node[part] = child
        node = child
    node[parts[-1]] = value
    return top


def _properties(data: Any) -> dict[str, Any] | None:
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("properties"), dict):
        return data["properties"]
    if isinstance(data.get("mappings"), dict):
        return _properties(data["mappings"])
    if len(data) == 1:  # {"<index>": {"mappings": ...}}
        return _properties(next(iter(data.values())))
    return None


def _walk(properties: dict[str, Any], prefix: str, out: Mapping) -> None:
    for name, spec in properties.items():
        if not isinstance(spec, dict):
            continue
        path = prefix + name
        kind = spec.get("type")
        if kind == "alias" and isinstance(spec.get("path"), str):
            out.aliases[path] = spec["path"]
        elif isinstance(kind, str):
            out.types[path] = kind
        if "null_value" in spec:
            out.null_values[path] = spec["null_value"]
        if isinstance(spec.get("properties"), dict):
            _walk(spec["properties"], path + ".", out)


def _parent(doc: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, str]:
    """The object holding `path`'s last part (nested, or a dotted key at the top)."""
    if path in doc:
        return doc, path
    node: Any = doc
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return None, parts[-1]
    return (node, parts[-1]) if isinstance(node, dict) else (None, parts[-1])


_VERSION = re.compile(r"^(\d+(?:\.\d+)*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


def version_key(text: Any) -> tuple[Any, ...] | None:
    """How Elasticsearch's `version` type orders a value (SemVer: numbers numerically, a
    pre-release before its release); a value that is no version sorts after all that
    are, among themselves as strings."""
    if not isinstance(text, str):
        return None
    match = _VERSION.match(text)
    if match is None:
        return (1, (), 0, text)
    numbers = tuple(int(n) for n in match.group(1).split("."))
    pre = match.group(2)
    return (0, numbers, 0 if pre else 1, pre or "")
