"""Many rules in one pass: the same alerts as each rule run alone, at a fraction of the cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine_helpers import T0, feed, net, start

from app.cli.detect import DETECT_LIMITS, run
from app.engine import Engine, EngineSettings, load_rule
from app.engine.rule import load_rules
from app.engine.ruleset import RuleSet
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
