"""Rules as data: a TOML file in Elastic detection-rules format, compiled once at load.

The rule changes over time upstream (docs/semantics.md), so its query and metadata live in
a file; a rule that does not load never starts a worker, and the reason is one line.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.engine.compile import CompiledQuery, QueryError, compile_query
from app.engine.mapping import Mapping
from app.errors import ConfigError

RULES_DIR = Path(__file__).resolve().parents[1] / "rules"
DEFAULT_RULE = RULES_DIR / "msbuild_making_network_connections.toml"


class RuleError(ConfigError):
    """The rule file cannot be read, is not an EQL rule, or uses unsupported EQL; one line."""


@dataclass(frozen=True)
class Rule:
    """A loaded rule: detection-rules metadata plus the compiled query."""

    rule_id: str
    name: str
    query: str
    compiled: CompiledQuery
    version: int | None = None
    description: str = ""
    severity: str = "medium"
    risk_score: int = 47
    tags: tuple[str, ...] = ()
    threat: tuple[dict[str, Any], ...] = ()
    index: tuple[str, ...] = ()
    interval: str | None = None
    lookback: str | None = None
    max_signals: int | None = None
    author: tuple[str, ...] = ()
    license: str | None = None
    references: tuple[str, ...] = ()
    path: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def maxspan_ms(self) -> int | None:
        return self.compiled.maxspan_ms


def _strings(value: Any, what: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuleError(f"{where}: [rule] {what} must be a list of strings")
    return tuple(value)


def parse_rule(text: str, *, source: str = "<rule>", mapping: Mapping | None = None) -> Rule:
    """Parse rule TOML text; `source` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{source}: invalid TOML: {exc}") from None
    rule = data.get("rule")
    if not isinstance(rule, dict):
        raise RuleError(f"{source}: no [rule] table (expected Elastic detection-rules format)")
    for key in ("rule_id", "name", "query"):
        if not isinstance(rule.get(key), str) or not rule[key].strip():
            raise RuleError(f"{source}: [rule] has no {key}")
    kind, language = rule.get("type", "eql"), rule.get("language", "eql")
    if kind != "eql" or language != "eql":
        raise RuleError(
            f"{source}: rule type {kind!r} / language {language!r} is not supported (eql only)"
        )
    try:
        compiled = compile_query(rule["query"], mapping)
    except QueryError as exc:
        raise RuleError(f"{source}: {exc}") from None
    risk = rule.get("risk_score", 47)
    version = rule.get("version")
    max_signals = rule.get("max_signals")
    if not isinstance(risk, int) or isinstance(risk, bool):
        raise RuleError(f"{source}: [rule] risk_score must be an integer")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise RuleError(f"{source}: [rule] version must be an integer")
    threat = rule.get("threat", [])
    if not isinstance(threat, list) or not all(isinstance(t, dict) for t in threat):
        raise RuleError(f"{source}: [[rule.threat]] must be tables")
    lookback = rule.get("from")
    return Rule(
        rule_id=rule["rule_id"],
        name=rule["name"],
        query=rule["query"].strip(),
        compiled=compiled,
        version=version,
        description=str(rule.get("description", "")).strip(),
        severity=str(rule.get("severity", "medium")),
        risk_score=risk,
        tags=_strings(rule.get("tags"), "tags", source),
        threat=tuple(threat),
        index=_strings(rule.get("index"), "index", source),
        interval=rule.get("interval"),
        lookback=lookback if isinstance(lookback, str) else None,
        max_signals=max_signals if isinstance(max_signals, int) else None,
        author=_strings(rule.get("author"), "author", source),
        license=rule.get("license"),
        references=_strings(rule.get("references"), "references", source),
        path=source,
        metadata=dict(data.get("metadata", {})),
    )


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    """The .toml files of `paths` (files, or folders searched recursively), sorted."""
    out: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            out.extend(sorted(path.rglob("*.toml")))
        elif path.is_file():
            out.append(path)
        else:
            raise RuleError(f"{name}: no such file or folder")
    return out


def rule_language(path: Path) -> str | None:
    """The `[rule] language` of a rule file, or None (unreadable: load_rule will say)."""
    try:
        rule = tomllib.loads(path.read_text(encoding="utf-8")).get("rule", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return rule.get("language") if isinstance(rule, dict) else None


@dataclass
class RuleLoad:
    """What `load_rules` found: the rules, and every file it did not take, with why."""

    rules: list[Rule] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def load_rules(
    paths: Iterable[str | Path], *, stream: bool = False, mapping: Mapping | None = None
) -> RuleLoad:
    """Every EQL rule under `paths`; rules of other languages are skipped, a rule that
    does not load (or, with `stream`, runs only in `seqwatch detect`) is refused with
    its one-line reason, a second rule with the same rule_id too."""
    out = RuleLoad()
    ids: dict[str, Path] = {}
    for path in rule_files(paths):
        language = rule_language(path)
        if language not in (None, "eql"):
            out.skipped.append((path, f"language {language}"))
            continue
        try:
            rule = load_stream_rule(path, mapping) if stream else load_rule(path, mapping)
        except RuleError as exc:
            out.refused.append((path, str(exc).removeprefix(f"{path}: ")))
            continue
        if rule.rule_id in ids:
            out.refused.append((path, f"rule_id {rule.rule_id} is {ids[rule.rule_id]}'s too"))
            continue
        ids[rule.rule_id] = path
        out.rules.append(rule)
    return out


def stream_problem(rule: Rule) -> str | None:
    """Why the worker cannot run `rule` (it runs in `seqwatch detect`), or None."""
    if rule.compiled.pipes:
        names = ", ".join(f"`{name}`" for name, _ in rule.compiled.pipes)
        return (
            f"the query ends in pipes ({names}), which select from a search's result set;"
            " a stream has none: run it with `seqwatch detect`, or drop the pipes"
        )
    return None


def load_stream_rule(path: str | Path | None = None, mapping: Mapping | None = None) -> Rule:
    """load_rule() for the worker: also refuses what only `seqwatch detect` runs."""
    rule = load_rule(path, mapping)
    problem = stream_problem(rule)
    if problem is not None:
        raise RuleError(f"{rule.path}: {problem}")
    return rule


def load_rule(path: str | Path | None = None, mapping: Mapping | None = None) -> Rule:
    """Load a rule file; None loads the bundled default (the 7.10 version 5 MSBuild rule).
    `mapping`: the index mapping its fields are read as (`--mapping`)."""
    file = Path(path) if path is not None else DEFAULT_RULE
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RuleError(f"rule file {file} not found") from None
    except IsADirectoryError:
        raise RuleError(f"rule file {file} is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"cannot read rule file {file}: {exc}") from None
    return parse_rule(text, source=str(file), mapping=mapping)
