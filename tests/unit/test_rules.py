"""Rule files: loading, errors (one line), and each shipped rule's positive/negative cases."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_helpers import RULE_710, RULE_CURRENT, RULE_INSTALLUTIL, T0, alerts_for, net, start

from app.engine import RuleError, load_rule
from app.engine.rule import load_stream_rule, parse_rule
from app.errors import ConfigError

DESCRIPTION = (
    "Identifies MsBuild.exe making outbound network connections. This may indicate adversarial"
    " activity as MsBuild is often leveraged by adversaries to execute code and evade detection."
)


def test_default_rule_is_the_710_version_5_rule() -> None:
    rule = load_rule()
    assert rule.path == str(RULE_710)
    assert rule.rule_id == "0e79980b-4250-4a50-a509-69294c14e84b"
    assert rule.name == "MsBuild Making Network Connections"
    assert rule.version == 5
    assert rule.description == DESCRIPTION
    assert (rule.severity, rule.risk_score) == ("medium", 47)
    assert rule.index == ("winlogbeat-*", "logs-endpoint.events.*")
    assert (rule.interval, rule.lookback, rule.max_signals) == ("5m", "now-9m", 100)
    assert rule.tags == ("Elastic", "Host", "Windows", "Threat Detection", "Execution")
    assert rule.author == ("Elastic",)
    (threat,) = rule.threat
    assert threat["tactic"]["id"] == "TA0002"
    assert threat["tactic"]["reference"] == "https://attack.mitre.org/tactics/TA0002/"
    assert threat["technique"][0]["id"] == "T1127"
    assert rule.compiled.maxspan_ms is None
    assert [k.path for k in rule.compiled.keys] == ["process.entity_id"]


def test_current_rule_is_a_verbatim_copy_with_its_licence(shared: Path) -> None:
    upstream = (shared / "elastic" / "msbuild_making_network_connections.current.toml").read_text()
    assert RULE_CURRENT.read_text().endswith(upstream)
    licence = (shared / "elastic" / "LICENSE.txt").read_bytes()
    assert (RULE_710.parent / "LICENSE-elastic.txt").read_bytes() == licence
    rule = load_rule(RULE_CURRENT)
    assert rule.compiled.maxspan_ms == 30_000
    assert rule.license == "Elastic License v2"


def _current_start(**overrides: object) -> dict[str, object]:
    doc = start(t=T0)
    doc.update(overrides)  # type: ignore[arg-type]
    return doc


# upstream rule (version 216): maxspan=30s, host.os.type, original_file_name, user.id, actions
CURRENT_CASES = [
    ("endpoint-pair", [start(), net()], 1),
    ("lookup-requested-no-ip", [start(), net(ip=None, action="lookup_requested")], 1),
    ("renamed-binary-by-original-file-name", [start(name="build.exe"), net(name="build.exe")], 1),
    ("maxspan-30s-ok", [start(t=T0), net(t=T0 + 30_000)], 1),
    ("maxspan-30s-exceeded", [start(t=T0), net(t=T0 + 30_001)], 0),
    ("system-user-start", [start(user={"id": "S-1-5-18"}), net()], 0),
    ("system-user-net", [start(), net(user={"id": "S-1-5-18"})], 0),
    ("not-windows", [start(host={"os": {"type": "linux"}}), net()], 0),
    ("other-action", [start(), net(action="disconnect_received")], 0),
    ("loopback", [start(), net(ip="127.0.0.1")], 0),
    (
        "benign-dns",
        [
            start(),
            net(ip=None, action="lookup_requested", dns={"question": {"name": "API.NuGet.org"}}),
        ],
        0,
    ),
    ("other-process", [start(name="cmd.exe", process={"entity_id": "{x}", "name": "cmd.exe"})], 0),
]


@pytest.mark.parametrize(
    ("docs", "expected"), [c[1:] for c in CURRENT_CASES], ids=[c[0] for c in CURRENT_CASES]
)
def test_current_rule_cases(docs: list[dict[str, object]], expected: int) -> None:
    assert alerts_for(docs, RULE_CURRENT) == expected


V510_CASES = [
    ("pair", [start(), net()], 1),
    ("pair-9min-apart", [start(t=T0), net(t=T0 + 540_000)], 1),  # no maxspan in 7.10 v5
    ("system-user-still-alerts", [start(user={"id": "S-1-5-18"}), net()], 1),
    ("renamed-binary-does-not", [start(name="build.exe"), net(name="build.exe")], 0),
    ("loopback", [start(), net(ip="::1")], 0),
]


@pytest.mark.parametrize(
    ("docs", "expected"), [c[1:] for c in V510_CASES], ids=[c[0] for c in V510_CASES]
)
def test_710_rule_cases(docs: list[dict[str, object]], expected: int) -> None:
    assert alerts_for(docs, RULE_710) == expected


def test_installutil_rule() -> None:
    rule = load_rule(RULE_INSTALLUTIL)
    assert rule.name == "InstallUtil Process Making Network Connections"
    docs = [start(name="InstallUtil.exe"), net(name="installutil.exe")]
    assert alerts_for(docs, RULE_INSTALLUTIL) == 1
    assert alerts_for([start(), net()], RULE_INSTALLUTIL) == 0
    inbound = net(name="InstallUtil.exe", network={"direction": "ingress"})
    assert alerts_for([docs[0], inbound], RULE_INSTALLUTIL) == 0


# -- errors ---------------------------------------------------------------------------------

GOOD = '[rule]\nrule_id = "r"\nname = "n"\nquery = """{}"""\n'
SEQ = "sequence by process.entity_id [process where {}] [network where true]"

UNSUPPORTED = [
    (SEQ.format('wildcard(process.name, "a*")'), "function `wildcard`"),
    (SEQ.format("length(process.name)"), "non-boolean function `length` as a condition"),
    (SEQ.format('concat~(process.name, "x") == "y"'), "case-insensitive form of `concat`"),
    (SEQ.format("substring(process.name) == 3"), "takes 2 to 3 arguments, not 1"),
    (SEQ.format('process.name regex "("'), "invalid regex"),
    (SEQ.format("process.name:length() == 3"), "method call"),
    (SEQ.format("true") + " | unique process.name", "pipe `unique`"),
    ("sequence by a [process where true]", "needs at least 2 stages, found 1"),
    ("sequence by a [process where true] by b [network where true]", "inconsistent number"),
    ("sequence by a [process where true] ![network where true]", "needs `with maxspan`"),
    ("sequence with maxspan=1s ![process where true] ![file where true]", "at least one"),
    ("sequence [process where true] with runs=101", "runs must be 1 to 100"),
    ("sequence by a with maxspan=30 [process where true] [network where true]", "maxspan"),
    (SEQ.format('cidrmatch(destination.ip, "300.1.1.1")'), "invalid address or CIDR"),
    (SEQ.format('process.name == "a'), "invalid EQL syntax"),
    ("join by a [process where true] [network where true]", "join"),
]


def test_pipes_run_in_detect_and_the_worker_refuses_them(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(GOOD.format(SEQ.format("true") + " | head 1"))
    assert load_rule(path).compiled.pipes == (("head", 1),)
    with pytest.raises(RuleError, match=r"pipes \(`head`\).*seqwatch detect"):
        load_stream_rule(path)


@pytest.mark.parametrize(("query", "needle"), UNSUPPORTED)
def test_unsupported_constructs_are_rejected_with_one_line(query: str, needle: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(GOOD.format(query), source="r.toml")
    message = str(caught.value)
    assert needle in message
    assert "\n" not in message
    assert message.startswith("r.toml: ")
    if "syntax" not in needle and "stages" not in needle and "arguments" not in needle:
        assert "line 1, column" in message


def test_position_is_reported_on_multi_line_queries() -> None:
    query = "sequence by a\n  [process where true]\n  [network where nosuch(x)]"
    with pytest.raises(RuleError, match=r"line 3, column 18"):
        parse_rule(GOOD.format(query))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[rule\nname = 1", "invalid TOML"),
        ('[metadata]\nx = "y"\n', "no [rule] table"),
        ('[rule]\nrule_id = "r"\nname = "n"\n', "[rule] has no query"),
        ('[rule]\nrule_id = "r"\nname = "n"\nquery = "  "\n', "[rule] has no query"),
        ('[rule]\nname = "n"\nquery = "x"\n', "[rule] has no rule_id"),
        (
            '[rule]\nrule_id = "r"\nname = "n"\ntype = "query"\nlanguage = "kuery"\nquery = "x"\n',
            "is not supported (eql only)",
        ),
        (GOOD.format(SEQ.format("true")) + "risk_score = 'x'\n", "risk_score must be an integer"),
        (GOOD.format(SEQ.format("true")) + "tags = 'x'\n", "tags must be a list of strings"),
    ],
)
def test_bad_rule_files(text: str, needle: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(text)
    assert needle in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_rule_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_rule(tmp_path / "nope.toml")
    with pytest.raises(RuleError, match="is a directory"):
        load_rule(tmp_path)


def test_supported_subset_compiles() -> None:
    query = (
        "sequence by process.entity_id, host.id with maxspan=5m"
        ' [process where a : ("x*", "?y") and b in ("1", "2") and c in~ ("A") and d != null'
        ' and not e == null and (f == 1 or g == true) and h != "z" and not i not in ("q")'
        ' and cidrmatch(j, "10.0.0.0/8", "fe80::/10", "192.168.1.1")]'
        " [any where true]"
    )
    rule = parse_rule(GOOD.format(query))
    assert rule.compiled.maxspan_ms == 300_000
    assert [k.path for k in rule.compiled.keys] == ["process.entity_id", "host.id"]
    assert rule.compiled.stages[1].category is None
