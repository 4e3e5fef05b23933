"""Elasticsearch's EQL spec suite, run through seqwatch's engine as `seqwatch detect` runs it.

The queries and data are Elasticsearch's (x-pack/plugin/eql/qa/common/src/main/resources,
copies with their licence under tests/data/elasticsearch-eql/; the endgame events are read
in place from the `eql` package, `eql/etc/test_data.json`, the same file). The data is
loaded as Elasticsearch's spec runner loads it (the endgame FILETIME `timestamp` becomes
`@timestamp` in ms, documents keep file order) and read through the runner's index
mapping (`--mapping`: the aliases `event.category` -> `event_type` and `event.sequence`
-> the id field, a `null_value`, a `version` field).
Each query runs with the runner's tiebreaker and its answer is compared as the runner
compares it (`BaseEqlSpecTestCase`): the tiebreaker of every event, sequence after sequence
(-1 for a missing-event stage), in Elasticsearch's result order, at most `size` (50).
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import eql.etc
import orjson

from app.cli.detect import DETECT_LIMITS, apply_pipes, run
from app.engine import Engine, EngineSettings
from app.engine.compile import compile_query
from app.engine.mapping import Mapping
from app.engine.rule import Rule

ES_DIR = Path(__file__).resolve().parents[1] / "data" / "elasticsearch-eql"
ENDGAME = Path(eql.etc.__file__).parent / "test_data.json"
FILETIME_EPOCH_MS = 11_644_473_600_000


@dataclass(frozen=True)
class Suite:
    """One TOML file of queries over one data set, as EqlSpecTestCase & co. pair them."""

    name: str
    queries: Path
    data: str  # "endgame", "extra", "missing-events"
    tiebreaker: str

    @property
    def mapping(self) -> Path:
        """The index mapping the runner creates the data set's index with."""
        if self.data == "endgame":
            return ES_DIR / "mapping-default.json"
        if self.data == "endgame-nanos":
            return ES_DIR / "endgame-140-nanos.mapping"
        return ES_DIR / f"{self.data}.mapping"


SUITES = (
    Suite("test_queries", ES_DIR / "test_queries.toml", "endgame", "serial_event_id"),
    Suite(
        "additional_test_queries",
        ES_DIR / "additional_test_queries.toml",
        "endgame",
        "serial_event_id",
    ),
    Suite("test_queries_date", ES_DIR / "test_queries_date.toml", "endgame", "serial_event_id"),
    # EqlDateNanosSpecTestCase: the endgame events in a date_nanos index.
    Suite(
        "test_queries_date_nanos",
        ES_DIR / "test_queries_date_nanos.toml",
        "endgame-nanos",
        "serial_event_id",
    ),
    Suite("test_extra", ES_DIR / "test_extra.toml", "extra", "sequence"),
    Suite("test_missing_events", ES_DIR / "test_missing_events.toml", "missing-events", "sequence"),
)


@dataclass(frozen=True)
class SpecQuery:
    suite: Suite
    name: str
    query: str
    expected: list[Any]
    join_keys: list[str] | None
    size: int
    raw: dict[str, Any] = field(repr=False)


def _json_with_comments(path: Path) -> Any:
    lines = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("//")]
    return json.loads("\n".join(lines))


def load_docs(data: str) -> list[dict[str, Any]]:
    """The documents of a data set as the spec runner loads them (its DataLoader turns
    the endgame FILETIME into `@timestamp`; the mapping does the rest: `--mapping`)."""
    if data == "endgame":
        docs = json.loads(ENDGAME.read_text())
        for doc in docs:
            doc["@timestamp"] = doc["timestamp"] // 10_000 - FILETIME_EPOCH_MS
        return docs
    if data == "endgame-nanos":  # DataLoader.timestampToUnixNanos: the number as epoch ns
        docs = json.loads(ENDGAME.read_text())
        for doc in docs:
            digits = str(doc["timestamp"])
            millis, fraction = digits[:12], digits[12:]
            doc["@timestamp"] = millis if fraction == "000000" else f"{millis}.{fraction}"
            doc["timestamp"] = doc["timestamp"] // 1_000_000
        return docs
    return _json_with_comments(ES_DIR / f"{data}.data")


_NULL_IN_ARRAY = re.compile(r"(?<=[\[,\s])null(?=\s*[,\]])")


def _toml(text: str) -> dict[str, Any]:
    """TOML with `null` in `join_keys` arrays, which Elasticsearch's TOML reader takes and
    TOML does not: read as "null", the string the runner compares a null key as."""
    lines = [
        _NULL_IN_ARRAY.sub('"null"', line) if line.startswith("join_keys") else line
        for line in text.splitlines()
    ]
    return tomllib.loads("\n".join(lines))


def load_suite(suite: Suite) -> list[SpecQuery]:
    spec = _toml(suite.queries.read_text())
    out = []
    for q in spec["queries"]:
        out.append(
            SpecQuery(
                suite,
                q["name"],
                q["query"],
                q["expected_event_ids"],
                q.get("join_keys"),
                q.get("size", 50),
                q,
            )
        )
    return out


def is_sequence(query: str) -> bool:
    return query.lstrip().lower().startswith("sequence")


def engine_alerts(spec: SpecQuery, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every alert `seqwatch detect`'s code path gives for the query, before any pipe."""
    compiled = compile_query(spec.query, Mapping.load(spec.suite.mapping))
    rule = Rule(rule_id="spec", name=spec.name, query=spec.query, compiled=compiled)
    settings = EngineSettings(
        ttl_ms=100 * 365 * 86_400_000,
        alert_cap=0,
        tiebreaker=spec.suite.tiebreaker,
        mapping=spec.suite.mapping,
    )
    engine = Engine.from_settings(rule, settings, limits=DETECT_LIMITS, clock=lambda: 4e9)
    block = b"\n".join(orjson.dumps(d) for d in docs) + b"\n"
    return list(run(engine, [(0, spec.suite.data, block)]))


def run_query(spec: SpecQuery, docs: list[dict[str, Any]]) -> tuple[list[int], list[str]]:
    """(event ids, join keys) of the engine's answer, in Elasticsearch's result order."""
    pipes = compile_query(spec.query).pipes
    # The runner reads results in Elasticsearch's order, `size` of them (its default 50).
    alerts = apply_pipes(engine_alerts(spec, docs), (*pipes, ("head", spec.size)))
    tiebreaker = spec.suite.tiebreaker
    ids: list[int] = []
    keys: list[str] = []
    for alert in alerts:
        for event in alert["events"]:
            ids.append(-1 if event.get("missing") else event["original"][tiebreaker])
        keys.extend("null" if k is None else str(k) for k in alert["seqwatch"].get("join_keys", []))
    return ids, keys
