"""Elastic's EQL conditions beyond the seed rule, evaluated as Elasticsearch does, through
event rules (every matching event alerts, no join key, no key state)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from engine_helpers import T0, feed, net, start

from app.engine import Engine, MemoryState, Source
from app.engine.rule import parse_rule

RULE = '[rule]\nrule_id = "r-{n}"\nname = "event rule"\nquery = """{query}"""\n'


def _matches(query: str, doc: dict[str, Any]) -> bool:
    rule = parse_rule(RULE.format(n=abs(hash(query)), query=query), source="t.toml")
    eng = Engine(rule, clock=lambda: 1_800_000_000.0)
    return bool(feed(eng, [doc]))


DOC = start(guid="{p}", t=T0)
DOC["process"].update(
    {
        "name": "MSBuild.exe",
        "command_line": r"C:\Windows\MSBuild.exe C:\Users\Public\build.xml /nologo",
        "args_count": 3,
        "pid": 4242,
        "parent": {"name": "cmd.exe", "pid": 4000},
    }
)
DOC["destination"] = {"ip": "10.1.2.3", "port": 8443}

CASES = [
    # comparisons
    ("process.pid > 4000", True),
    ("process.pid >= 4242 and process.pid <= 4242", True),
    ("process.pid < 4242", False),
    ("4000 < process.pid", True),
    ('process.name > "M"', True),
    ("process.args_count == 3", True),
    ("process.pid != 4242", False),
    ("process.missing > 1", False),
    ("not process.missing > 1", True),
    # `:` with numbers, like, regex and their ~ forms
    ("process.pid : 4242", True),
    ('process.name like "MSBuild.*"', True),
    ('process.name like "msbuild.*"', False),
    ('process.name like~ "msbuild.*"', True),
    ('process.name regex "MSB[a-z]+[.]exe"', True),
    ('process.name regex "msb[a-z]+[.]exe"', False),
    ('process.name regex~ "msb[a-z]+[.]exe"', True),
    ('process.name regex "MSB"', False),  # anchored, as Lucene's regexp is
    ('process.name in~ ("msbuild.exe", "x")', True),
    ('process.name in ("msbuild.exe", "x")', False),
    # functions, with their ~ forms
    ('startsWith(process.name, "MSB")', True),
    ('startsWith(process.name, "msb")', False),
    ('startsWith~(process.name, "msb")', True),
    ('endsWith~(process.command_line, "/NOLOGO")', True),
    ('stringContains(process.command_line, "Public")', True),
    ('stringContains(process.command_line, "public")', False),
    ("length(process.name) == 11", True),
    ('substring(process.name, 0, 3) == "MSB"', True),
    ('substring(process.name, -4) == ".exe"', True),
    ('concat(process.name, "-", process.pid) == "MSBuild.exe-4242"', True),
    ('indexOf(process.name, "B") == 2', True),
    ('number("10", 16) == 16', True),
    ('cidrMatch(destination.ip, "10.0.0.0/8")', True),
    ('CIDRMATCH(destination.ip, "192.168.0.0/16")', False),
    # arithmetic, signs, field against field
    ("process.pid - process.parent.pid == 242", True),
    ("process.pid * 2 > 8000", True),
    ("process.pid % 2 == 0", True),
    ("-process.pid < 0", True),
    ("process.parent.pid < process.pid", True),
    ("process.name == process.parent.name", False),
    ("length(process.name) in (10, 11)", True),
    # optional fields: missing is null
    ("?process.nothing == null", True),
    ("?process.nothing != null", False),
]


@pytest.mark.parametrize(("condition", "expected"), CASES, ids=[c for c, _ in CASES])
def test_condition(condition: str, expected: bool) -> None:
    assert _matches(f"process where {condition}", DOC) is expected


def test_an_event_rule_alerts_on_every_matching_event_without_state() -> None:
    rule = parse_rule(RULE.format(n=1, query='process where process.name : "msbuild.exe"'))
    eng = Engine(rule, clock=lambda: 1_800_000_000.0)
    state = MemoryState()
    docs = [start(guid=f"{{p{i}}}", t=T0 + i) for i in range(5)] + [net(), start(name="x.exe")]
    alerts = feed(eng, docs, state)
    assert len(alerts) == 5
    assert [k for k in state if not k.startswith("m|")] == [], "no key state"
    alert = alerts[0]
    assert alert["event"]["category"] == ["process"]
    assert [e["stage"] for e in alert["events"]] == [1]
    assert alert["kibana.alert.reason"].startswith("event rule: event at ")
    again = feed(eng, [docs[0]], state)
    assert again[0]["alert"]["id"] == alert["alert"]["id"], "a duplicate keeps its id"


def test_an_event_rule_has_an_alert_cap_too() -> None:
    rule = parse_rule(RULE.format(n=2, query="process where true"))
    eng = Engine(rule, alert_cap=3, clock=lambda: 1_800_000_000.0)
    alerts = feed(eng, [start(guid=f"{{c{i}}}", t=T0 + i) for i in range(10)])
    assert len(alerts) == 3 and eng.stats.held_by_cap == 7


def test_the_prefilter_keeps_what_new_conditions_need() -> None:
    rule = parse_rule(
        RULE.format(n=3, query='process where startsWith~(process.name, "msb") and x like "y*"')
    )
    eng = Engine(rule, clock=lambda: 1_800_000_000.0)
    assert eng.prefilter is not None and not eng.prefilter.passthrough
    raw = orjson.dumps(DOC | {"x": "yes"})
    assert eng.prefilter.may_match(raw)
    other = start(name="chrome.exe")
    del other["process"]["pe"]
    assert not eng.prefilter.may_match(orjson.dumps(other | {"x": "yes"}))
    assert eng.decode(raw, Source("t", 0, 0)) is not None
