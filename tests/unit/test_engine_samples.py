"""Real recorded telemetry from tests/data and the sample topics in topics/samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from engine_helpers import REPO, RULE_710, RULE_CURRENT, RULE_INSTALLUTIL, archive_lines

from app.engine import Engine, Event, MemoryState, Source, load_rule


def _run(lines: list[bytes], rule: Path, topic: str = "sample") -> tuple[list[dict], Engine]:
    eng = Engine(load_rule(rule))
    state = MemoryState()
    alerts: list[dict] = []
    for offset, line in enumerate(lines):
        result = eng.decode(line, Source(topic, 0, offset))
        if isinstance(result, Event):
            alerts += eng.process(result, state)
    return alerts, eng


@pytest.mark.parametrize("rule", [RULE_710, RULE_CURRENT])
def test_empire_msbuild_near_miss_does_not_alert(shared: Path, rule: Path) -> None:
    lines = archive_lines(shared / "security-datasets" / "empire_msbuild_dcerpc_wmi_smb.zip")
    assert len(lines) == 4559
    alerts, eng = _run(lines, rule)
    assert alerts == []
    assert sum(eng.stats.rejected.values()) == 0
    if rule == RULE_710:
        assert eng.stats.decoded >= 1  # MSBuild.exe's start was seen, and held


def test_covenant_installutil_alerts_exactly_once(shared: Path) -> None:
    lines = archive_lines(shared / "security-datasets" / "covenant_installutil.zip")
    alerts, _ = _run(lines, RULE_INSTALLUTIL)
    assert len(alerts) == 1
    (alert,) = alerts
    assert alert["process"]["entity_id"] == "{b34bc01c-add5-5f66-2210-000000000400}"
    assert alert["destination"] == {"ip": "10.10.10.5", "port": 80}
    assert [e["@timestamp"] for e in alert["events"]] == [
        "2020-09-20T01:18:13.416Z",
        "2020-09-20T01:18:16.318Z",
    ]
    reversed_alerts, _ = _run(lines[::-1], RULE_INSTALLUTIL)  # far outside the lateness
    assert len(reversed_alerts) == 1
    assert _run(lines, RULE_710)[0] == []


def test_metasploit_noise_does_not_alert(shared: Path) -> None:
    lines = archive_lines(shared / "security-datasets" / "metasploit_comsvcs_lsass_memory_dump.zip")
    assert len(lines) == 41_954
    alerts, eng = _run(lines, RULE_710)
    assert alerts == []
    assert sum(eng.stats.rejected.values()) == 0


def test_empire_enable_rdp_does_not_alert(shared: Path) -> None:
    lines = archive_lines(shared / "security-datasets" / "empire_enable_rdp.tar.gz")
    assert len(lines) == 2668
    assert _run(lines, RULE_710)[0] == []


def test_empire_enable_rdp_svchost_pairs_with_a_svchost_rule(shared: Path, tmp_path: Path) -> None:
    """The engine does pair real Winlogbeat 6 records when the rule names their process."""
    text = RULE_710.read_text().replace('"MSBuild.exe"', '"svchost.exe"')
    rule = tmp_path / "svchost.toml"
    rule.write_text(text)
    lines = archive_lines(shared / "security-datasets" / "empire_enable_rdp.tar.gz")
    alerts, _ = _run(lines, rule)
    # Their Sysmon UtcTime puts the connections 11 days before the starts (clock skew on the
    # host, SOURCES.md): a network event before its start never pairs.
    assert alerts == []


SAMPLES = REPO / "topics" / "samples"


@pytest.mark.skipif(not (SAMPLES / "EXPECTED.json").exists(), reason="no topics/samples")
def test_sample_topics_in_arrival_order_give_the_expected_alerts() -> None:
    expected = json.loads((SAMPLES / "EXPECTED.json").read_text())
    files: dict[str, list[bytes]] = {}
    eng = Engine(load_rule())
    state = MemoryState()
    alerts: list[dict] = []
    for ref in expected["arrival_order"]:
        name, line = ref.rsplit(":", 1)
        if name not in files:
            files[name] = (SAMPLES / name).read_bytes().splitlines()
        result = eng.decode(files[name][int(line) - 1], Source(name, 0, int(line)))
        if isinstance(result, Event):
            alerts += eng.process(result, state)
    got = sorted(a["process"]["entity_id"] for a in alerts)
    assert got == sorted(a["process.entity_id"] for a in expected["alerts"])
    assert not set(got) & set(expected["must_not_alert"])
    assert sum(eng.stats.rejected.values()) == 0
