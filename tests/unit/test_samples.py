"""The recorded-style samples must be well-formed shipper output and agree with EXPECTED.json:
the engine-vs-samples test relies on both."""

from __future__ import annotations

import json
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest

from devtools.synth import RULE, reference_alerts, rule_view

SAMPLES = Path(__file__).resolve().parents[2] / "topics" / "samples"
FILES = {
    "winlogbeat": "winlogbeat.ndjson",
    "logs-endpoint.events.process": "logs-endpoint.events.process.ndjson",
    "logs-endpoint.events.network": "logs-endpoint.events.network.ndjson",
}
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ISO_7 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")


@cache
def lines(fname: str) -> list[bytes]:
    return (SAMPLES / fname).read_bytes().splitlines()


@cache
def expected() -> dict[str, Any]:
    return json.loads((SAMPLES / "EXPECTED.json").read_text(encoding="utf-8"))


def line_at(loc: str) -> bytes:
    fname, _, no = loc.rpartition(":")
    return lines(fname)[int(no) - 1]


def all_values() -> list[bytes]:
    return [v for f in FILES.values() for v in lines(f)]


def winlogbeat_shape(doc: dict[str, Any]) -> str:
    if "winlog" in doc:
        return "winlogbeat7" if isinstance(doc["winlog"]["event_id"], int) else "winlogbeat8"
    if "event_id" in doc and "log_name" in doc:
        return "winlogbeat6"
    if "EventID" in doc and "Channel" in doc:
        return "nxlog"
    raise AssertionError(f"unknown winlogbeat-topic shape: {sorted(doc)[:8]}")


def test_files_exist_with_licence_and_readme() -> None:
    for f in [*FILES.values(), "EXPECTED.json", "README.md", "LICENSE-security-datasets.txt"]:
        assert (SAMPLES / f).is_file(), f
    assert "MIT License" in (SAMPLES / "LICENSE-security-datasets.txt").read_text()
    assert 200 <= len(all_values()) <= 600


@pytest.mark.parametrize("fname", list(FILES.values()))
def test_every_line_is_a_json_object(fname: str) -> None:
    for no, raw in enumerate(lines(fname), 1):
        doc = orjson.loads(raw)
        assert isinstance(doc, dict), f"{fname}:{no}"


def test_winlogbeat_topic_shapes() -> None:
    seen: dict[str, int] = {}
    for raw in lines(FILES["winlogbeat"]):
        doc = orjson.loads(raw)
        shape = winlogbeat_shape(doc)
        seen[shape] = seen.get(shape, 0) + 1
        if shape == "winlogbeat7":
            assert ISO_MS.match(doc["@timestamp"]) and doc["@metadata"]["beat"] == "winlogbeat"
            assert doc["process"]["entity_id"].startswith("{")
            assert isinstance(doc["event"]["category"], list)
        elif shape == "winlogbeat8":
            assert isinstance(doc["winlog"]["event_id"], str) and "process" not in doc
        elif shape == "winlogbeat6":
            assert isinstance(doc["event_id"], int) and doc["@metadata"]["version"] == "6.7.0"
    assert set(seen) == {"winlogbeat7", "winlogbeat8", "winlogbeat6", "nxlog"}, seen


@pytest.mark.parametrize(
    ("topic", "category", "actions"),
    [
        ("logs-endpoint.events.process", "process", {"start", "end"}),
        (
            "logs-endpoint.events.network",
            "network",
            {"connection_attempted", "lookup_requested", "disconnect_received"},
        ),
    ],
)
def test_endpoint_topic_shapes(topic: str, category: str, actions: set[str]) -> None:
    docs = [orjson.loads(x) for x in lines(FILES[topic])]
    assert docs
    for doc in docs:
        assert ISO_7.match(doc["@timestamp"])
        assert doc["event"]["category"] == [category]
        assert doc["event"]["dataset"] == topic.removeprefix("logs-")
        assert doc["data_stream"]["dataset"] == doc["event"]["dataset"]
        assert doc["event"]["action"] in actions
        assert not doc["process"]["entity_id"].startswith("{")  # base64, not a Sysmon GUID


def test_expected_is_consistent_with_the_files() -> None:
    exp = expected()
    assert exp["rule"] == RULE
    alert_ids = [a["process.entity_id"] for a in exp["alerts"]]
    assert all(a["rule"] == RULE for a in exp["alerts"])
    assert len(alert_ids) == len(set(alert_ids)) >= 4
    nots = exp["must_not_alert"]
    assert not set(alert_ids) & set(nots)
    blob = b"\n".join(all_values())
    for eid in [*alert_ids, *nots]:
        assert eid.encode() in blob, eid
    by_id = {s["process.entity_id"]: s for s in exp["scenarios"]}
    for eid in alert_ids:
        assert by_id[eid]["alert"] is True
    for s in exp["scenarios"]:
        assert (s["process.entity_id"] in alert_ids) == s["alert"]
        for loc in s["lines"]:
            assert s["process.entity_id"].encode() in line_at(loc), loc


def test_arrival_order_is_a_permutation_of_all_lines() -> None:
    order = expected()["arrival_order"]
    every = {f"{f}:{i}" for f in FILES.values() for i in range(1, len(lines(f)) + 1)}
    assert len(order) == len(every) and set(order) == every
    for f in FILES.values():  # within one file, arrival order is file order
        nos = [int(x.rpartition(":")[2]) for x in order if x.startswith(f + ":")]
        assert nos == sorted(nos)


def test_oracle_agrees_with_expected() -> None:
    exp = expected()
    got = reference_alerts(all_values())
    assert got == {a["process.entity_id"] for a in exp["alerts"]}


def test_scenario_details() -> None:
    """The properties the scenarios are there to exercise."""
    exp = expected()
    sc = {s["id"]: s for s in exp["scenarios"]}
    # S1: an exact duplicate of the alerting start record.
    s1 = [line_at(x) for x in sc["S1"]["lines"][:2]]
    assert s1[0] == s1[1]
    # S3 and S6: a DNS event without destination.ip completes the sequence.
    dns = orjson.loads(line_at(sc["S3"]["lines"][1]))
    assert dns["winlog"]["event_id"] == 22 and "destination" not in dns
    # S5: more than 9 minutes apart.
    a, b = (rule_view(orjson.loads(line_at(x))) for x in sc["S5"]["lines"])
    assert a is not None and b is not None and b[4] - a[4] > 9 * 60 * 1000
    # S6: the network records arrive before the start, whose @timestamp is earlier.
    order = exp["arrival_order"]
    start_loc, net_loc = sc["S6"]["lines"][0], sc["S6"]["lines"][2]
    assert order.index(net_loc) < order.index(start_loc)
    start, net = (rule_view(orjson.loads(line_at(x))) for x in (start_loc, net_loc))
    assert start is not None and net is not None and start[4] < net[4]
    # S7: the real Empire near miss is kept verbatim (NXLog, 2020 recording).
    empire = orjson.loads(line_at(sc["S7"]["lines"][0]))
    assert empire["EventID"] == 1 and empire["Image"].endswith("MSBuild.exe")
    assert empire["@timestamp"].startswith("2020-09-20")
    # Real Winlogbeat 6.7 lines come first.
    first = orjson.loads(lines(FILES["winlogbeat"])[0])
    assert first["@metadata"]["version"] == "6.7.0" and first["beat"]["name"] == "WECserver"


def test_build_is_reproducible(tmp_path: Path) -> None:
    """Re-running build.py over tests/data reproduces the committed files byte for byte."""
    import importlib.util

    data = SAMPLES.parents[1] / "tests" / "data"
    spec = importlib.util.spec_from_file_location("samples_build", SAMPLES / "build.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(mod)
    finally:
        del sys.modules[spec.name]
    mod.HERE = tmp_path  # write into a scratch directory
    mod.main(["build.py", str(data)])
    for f in [*FILES.values(), "EXPECTED.json", "README.md", "LICENSE-security-datasets.txt"]:
        assert (tmp_path / f).read_bytes() == (SAMPLES / f).read_bytes(), f
