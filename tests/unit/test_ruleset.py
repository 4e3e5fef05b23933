"""Many rules in one pass: the same alerts as each rule run alone, at a fraction of the cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from engine_helpers import T0, feed, net, start
from hypothesis import given, settings
from hypothesis import strategies as st

from app.cli.detect import DETECT_LIMITS, run
from app.engine import Engine, EngineSettings, Event, Source, load_rule
from app.engine.compile import compile_query
from app.engine.normalise import View
from app.engine.rule import load_rules
from app.engine.ruleset import RuleSet, _indexed
from devtools import synth
from tests.helpers import ROOT

SAMPLES = ROOT / "topics" / "samples"
SETTINGS = EngineSettings(alert_cap=0)


def _blocks() -> list[tuple[int, str, bytes]]:
    files = sorted(SAMPLES.glob("*.ndjson"))
    return [(i, f.name, f.read_bytes()) for i, f in enumerate(files)]


def _found(alerts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((a["rule"]["rule_id"], a["alert"]["id"]) for a in alerts)


def test_every_eql_rule_of_detection_rules_windows_loads(windows_rules: Path) -> None:
    found = load_rules([windows_rules], stream=True)
    assert found.refused == []
    assert (len(found.rules), len(found.skipped)) == (391, 96)


def test_a_rule_set_alerts_as_each_rule_alone(windows_rules: Path) -> None:
    base = load_rule()
    rules = [base, *(r for r in load_rules([windows_rules]).rules if r.rule_id != base.rule_id)]
    together = list(run(RuleSet(rules, SETTINGS, limits=DETECT_LIMITS), _blocks()))
    alone: list[dict[str, Any]] = []
    for rule in rules:
        alone.extend(run(Engine.from_settings(rule, SETTINGS, limits=DETECT_LIMITS), _blocks()))
    assert _found(together) == _found(alone)
    assert len({rule_id for rule_id, _ in _found(together)}) >= 2  # several rules alert


def test_state_alert_cap_and_counters_are_per_rule() -> None:
    base = load_rule()
    other = load_rule(
        ROOT / "app" / "rules" / "installutil_process_making_network_connections.toml"
    )
    rules = RuleSet([base, other], EngineSettings(alert_cap=1), clock=lambda: 1.8e9)
    docs = [start(guid=f"{{p{i}}}", t=T0 + i) for i in range(3)] + [
        net(guid=f"{{p{i}}}", t=T0 + 1_000 + i) for i in range(3)
    ]
    alerts = feed(rules, docs)
    assert len(alerts) == 1  # the MSBuild rule's cap (1 per bucket); InstallUtil saw nothing
    by_rule = {rule.rule_id: stats for rule, stats in rules.rule_stats()}
    assert by_rule[base.rule_id].held_by_cap == 2
    assert by_rule[other.rule_id].alerts == 0


# -- the value index ---------------------------------------------------------------------

_TEXTS = [
    "MSBuild.exe",
    "msbuild.EXE",
    "\u017fvchost.exe",
    "\u212aerberos",
    "İnstall",
    "88",
    "true",
    "",
]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["==", ":", "in~", "like", "like~", "in"]),
    st.lists(st.sampled_from(_TEXTS), min_size=1, max_size=3),
    st.lists(st.one_of(st.sampled_from(_TEXTS), st.integers(80, 90), st.booleans()), max_size=3),
)
def test_the_value_index_never_drops_a_record_the_condition_matches(
    op: str, literals: list[str], values: list[Any]
) -> None:
    quoted = ", ".join(orjson.dumps(v).decode() for v in literals)
    text = {
        "==": f"any where process.name == {orjson.dumps(literals[0]).decode()}",
        ":": f"any where process.name : ({quoted})",
        "in~": f"any where process.name in~ ({quoted})",
        "in": f"any where process.name in ({quoted})",
        "like": f"any where process.name like ({quoted})",
        "like~": f"any where process.name like~ ({quoted})",
    }[op]
    stage = compile_query(text).stages[0]
    view = View({"process": {"name": values}})
    if stage.anchor is None:
        assert op == "like~"  # re.IGNORECASE folds more than str.lower(): not indexed
        return
    if stage.predicate(view):
        assert _indexed(((stage.category, stage.anchor),), view, frozenset(), {})


def test_a_stage_is_indexed_on_its_most_selective_exact_field() -> None:
    stage = compile_query(
        'process where host.os.type == "windows" and process.name : ("A.exe", "b.EXE")'
        ' and process.args : "*-enc*"'
    ).stages[0]
    assert stage.anchor is not None
    assert (stage.anchor.ref.path, stage.anchor.values) == ("process.name", {"a.exe", "b.exe"})
    assert compile_query('process where process.name : "*.exe"').stages[0].anchor is None
    either = compile_query('process where process.name == "a" or process.name == "b"')
    assert either.stages[0].anchor.values == {"a", "b"}  # type: ignore[union-attr]
    mixed = compile_query('process where process.name == "a" or user.name == "b"')
    assert mixed.stages[0].anchor is None


def test_a_rule_set_decodes_what_each_rule_decodes_alone(windows_rules: Path) -> None:
    """The index and the automaton together, on the bench's generated traffic: every
    event each rule makes of a record alone, the rule set makes of it too."""
    base = load_rule()
    rules = [base, *(r for r in load_rules([windows_rules]).rules if r.rule_id != base.rule_id)]
    together = RuleSet(rules, SETTINGS, clock=lambda: 1.8e9)
    alone = [Engine.from_settings(r, SETTINGS, clock=lambda: 1.8e9) for r in rules]
    for engine in alone:
        engine.tag = together.engines[alone.index(engine)].tag
    scenario = synth.generate(3_000, seed=11, msbuild_share=0.05)
    made = 0
    for k, record in enumerate(scenario.records):
        source = Source("t", 0, k)
        want = sorted(_events(e.decode(record.value, source) for e in alone))
        got = sorted(_events([together.decode(record.value, source)]))
        assert got == want, record.value[:300]
        made += len(got)
    assert made > 1_000  # the broad stages of Elastic's rules match much of this traffic


def _events(decoded: Any) -> list[tuple[str, str, tuple[int, ...]]]:
    out = []
    for d in decoded:
        for event in (d,) if type(d) is Event else d if type(d) is tuple else ():
            out.append((event.rule, event.key, tuple(event.stages)))
    return out
