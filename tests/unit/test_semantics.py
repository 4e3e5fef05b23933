"""docs/semantics.md, clause by clause: the 7.10 rule's semantics, positive and negative."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from engine_helpers import MSBUILD, T0, alerts_for, engine, feed, iso, net, start

from app.engine import Event, MemoryState, Source

G = "{11111111-0000-0000-0000-000000000001}"


def _with(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `doc` with the nested field at `path` set (None deletes it)."""
    import copy

    out = copy.deepcopy(doc)
    node = out
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    return out


# -- predicates ------------------------------------------------------------------------------

PREDICATE_CASES = [
    # (id, start doc, network doc, expected alerts)
    ("baseline", start(), net(), 1),
    # `process where` = event.category == "process"; string or array
    ("category-string", _with(start(), "event.category", "process"), net(), 1),
    ("category-array-any", _with(start(), "event.category", ["host", "process"]), net(), 1),
    ("category-wrong-start", _with(start(), "event.category", ["network"]), net(), 0),
    ("category-wrong-net", start(), _with(net(), "event.category", ["process"]), 0),
    ("category-missing", _with(start(), "event.category", None), net(), 0),
    ("category-case-sensitive", _with(start(), "event.category", ["Process"]), net(), 0),
    # `:` is case-insensitive equality
    ("colon-lower", _with(start(), "process.name", "msbuild.exe"), net(name="MSBUILD.EXE"), 1),
    ("colon-not-substring", _with(start(), "process.name", "MSBuild.exe.bak"), net(), 0),
    ("colon-not-prefix", start(name="MyMSBuild.exe"), net(name="MyMSBuild.exe"), 0),
    # `==` is case-sensitive
    ("eq-case-sensitive", _with(start(), "event.type", ["START"]), net(), 0),
    ("eq-type-missing", _with(start(), "event.type", None), net(), 0),
    # arrays match when any element matches
    ("type-array", _with(start(), "event.type", ["start", "process_start"]), net(), 1),
    ("type-string", _with(start(), "event.type", "start"), net(), 1),
    ("type-array-none", _with(start(), "event.type", ["end", "info"]), net(), 0),
    ("name-array-any", _with(start(), "process.name", ["x.exe", "MSBuild.exe"]), net(), 1),
    # not cidrmatch(destination.ip, "127.0.0.1", "::1")
    ("ip-missing", start(), net(ip=None), 1),
    ("ip-127.0.0.1", start(), net(ip="127.0.0.1"), 0),
    ("ip-::1", start(), net(ip="::1"), 0),
    ("ip-127.0.0.2", start(), net(ip="127.0.0.2"), 1),
    ("ip-0.0.0.0", start(), net(ip="0.0.0.0"), 1),
    ("ip-::", start(), net(ip="::"), 1),
    ("ip-v4-mapped-loopback", start(), net(ip="::ffff:127.0.0.1"), 0),
    ("ip-v6-long-loopback", start(), net(ip="0:0:0:0:0:0:0:1"), 0),
    ("ip-unparsable", start(), net(ip="not-an-ip"), 1),
    ("ip-dash", start(), net(ip="-"), 1),
    ("ip-array-any-loopback", start(), _with(net(), "destination.ip", ["10.1.1.1", "::1"]), 0),
    ("ip-null", start(), _with(net(), "destination.ip", None), 1),
    ("ip-private-alerts", start(), net(ip="10.10.10.5"), 1),
]


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [case[1:] for case in PREDICATE_CASES],
    ids=[case[0] for case in PREDICATE_CASES],
)
def test_predicates(first: dict[str, Any], second: dict[str, Any], expected: int) -> None:
    assert alerts_for([first, second]) == expected


def test_dotted_keys_resolve_like_nested() -> None:
    dotted_start = {
        "@timestamp": iso(T0),
        "event.category": "process",
        "event.type": ["start"],
        "process.name": "MSBuild.exe",
        "process.entity_id": G,
    }
    mixed_net = {
        "@timestamp": iso(T0 + 5),
        "event": {"category.": None, "category": "network"},
        "process": {"entity_id": G},
        "process.name": "msbuild.exe",
        "destination.ip": "10.0.0.9",
    }
    assert alerts_for([dotted_start, mixed_net]) == 1
    loop = _with(mixed_net, "destination.ip", None) | {"destination": {"ip": "127.0.0.1"}}
    assert alerts_for([dotted_start, loop]) == 0


def test_dotted_and_nested_values_merge_as_one_array() -> None:
    # Elasticsearch indexes both spellings into one multi-valued field: any element counts.
    doc = _with(net(), "destination.ip", "10.0.0.1") | {"destination.ip": "::1"}
    assert alerts_for([start(), doc]) == 0


def test_sysmon_dns_event_completes_the_sequence(shared_dns_event: dict[str, Any]) -> None:
    dns = dict(shared_dns_event)
    dns["process"] = dict(dns["process"], name="MSBuild.exe", entity_id=G)
    assert "destination" not in dns
    assert alerts_for([start(), dns | {"@timestamp": iso(T0 + 2_000)}]) == 1


def test_endpoint_lookup_requested_completes_the_sequence() -> None:
    lookup = net(ip=None, action="lookup_requested") | {"dns": {"question": {"name": "x.test"}}}
    assert alerts_for([start(), lookup]) == 1


# -- sequences -------------------------------------------------------------------------------


def test_latest_start_wins_and_is_consumed() -> None:
    s1, s2 = start(t=T0), start(t=T0 + 10, process={"entity_id": G, "name": "MSBuild.exe"})
    n1, n2 = net(t=T0 + 20), net(t=T0 + 30, destination={"ip": "10.0.0.2"})
    alerts = feed(engine(), [s1, s2, n1, n2])
    assert len(alerts) == 1
    assert alerts[0]["events"][0]["timestamp_ms"] == T0 + 10  # the latest start
    assert alerts[0]["events"][1]["timestamp_ms"] == T0 + 20


def test_one_alert_per_start_then_a_new_start_alerts_again() -> None:
    docs = [start(t=T0), net(t=T0 + 1), net(t=T0 + 2, destination={"ip": "10.9.9.9"})]
    later = [start(t=T0 + 100, user={"id": "x"}), net(t=T0 + 101, destination={"ip": "10.1.2.3"})]
    assert alerts_for(docs) == 1
    assert alerts_for(docs + later) == 2


@pytest.mark.parametrize("network_first", [False, True])
def test_same_millisecond_counts_as_start_then_network(network_first: bool) -> None:
    pair = [start(t=T0), net(t=T0)]
    assert alerts_for(pair[::-1] if network_first else pair) == 1


@pytest.mark.parametrize("network_first", [False, True])
def test_network_before_start_in_event_time_never_pairs(network_first: bool) -> None:
    pair = [start(t=T0 + 1), net(t=T0)]
    assert alerts_for(pair[::-1] if network_first else pair) == 0


def test_events_without_the_join_key_are_skipped() -> None:
    eng = engine()
    s = _with(start(), "process.entity_id", None)
    n = _with(net(), "process.entity_id", None)
    assert feed(eng, [s, n, s, n]) == []
    assert eng.stats.no_key == 4  # 7.10 would have joined them all under a null key


def test_join_key_of_other_process_does_not_pair() -> None:
    assert alerts_for([start(), net(guid="{other}")]) == 0


TTL = 540_000


@pytest.mark.parametrize(
    ("gap", "expected"),
    [(0, 1), (4 * 60_000, 1), (TTL, 1), (TTL + 1, 0), (3_600_000, 0)],
)
def test_ttl_bounds_the_pair_span(gap: int, expected: int) -> None:
    assert alerts_for([start(t=T0), net(t=T0 + gap)]) == expected
    # and regardless of arrival order (within the allowed lateness, here widened)
    assert alerts_for([net(t=T0 + gap), start(t=T0)], lateness_ms=3_600_000) == expected


def test_network_beyond_ttl_does_not_consume_the_start() -> None:
    far, near = net(t=T0 + TTL + 5), net(t=T0 + 1_000, destination={"ip": "10.0.0.7"})
    alerts = feed(engine(), [start(t=T0), far, near])
    assert len(alerts) == 1
    assert alerts[0]["events"][1]["timestamp_ms"] == T0 + 1_000


def test_ttl_is_configurable() -> None:
    assert alerts_for([start(t=T0), net(t=T0 + 61_000)], ttl_ms=60_000) == 0
    assert alerts_for([start(t=T0), net(t=T0 + 59_000)], ttl_ms=60_000) == 1


def test_network_arriving_before_its_start_is_held_and_matched() -> None:
    eng = engine()
    state = MemoryState()
    assert feed(eng, [net(t=T0 + 3_000)], state) == []
    alerts = feed(eng, [start(t=T0)], state)
    assert len(alerts) == 1
    assert [e["stage"] for e in alerts[0]["events"]] == [1, 2]


def test_records_later_than_the_lateness_are_processed_and_counted() -> None:
    eng = engine()
    other = start(guid="{late-clock}", t=T0 + 200_000)
    alerts = feed(eng, [other, net(t=T0 + 1_000), start(t=T0)])
    assert len(alerts) == 1  # still processed: the start was within TTL of the watermark
    assert eng.stats.late == 2


def test_exact_duplicates_never_alert_twice() -> None:
    eng = engine()
    s, n = start(), net()
    assert len(feed(eng, [s, n, s, n, n, s])) == 1
    assert eng.stats.duplicates == 4


def test_duplicate_start_after_the_alert_does_not_rearm() -> None:
    eng = engine()
    s, n1, n2 = start(), net(), net(t=T0 + 5_000, destination={"ip": "10.3.3.3"})
    assert len(feed(eng, [s, n1, s, n2])) == 1


def test_duplicate_start_from_an_input_read_late_does_not_alert_again() -> None:
    """The bundled sample's S1 through a worker whose ingest forwarded partition 0 first.

    Partition 0 holds the start and a connection, and runs 19.5 minutes of event time
    ahead (expiring the start's duplicate marker); partitions 2 and 3, read only then,
    move the watermark back and bring the second connection and the start again.
    """
    eng = engine()
    state = MemoryState()
    s = orjson.dumps(start(t=T0))
    arrivals = [
        (0, s),
        (0, orjson.dumps(net(t=T0 + 63_000))),
        (0, orjson.dumps(start(guid="{other}", t=T0 + 1_170_000))),
        (2, orjson.dumps(net(t=T0 + 2_500, destination={"ip": "10.9.9.9"}))),
        (3, s),
    ]
    alerts = []
    for offset, (partition, raw) in enumerate(arrivals):
        event = eng.decode(raw, Source("winlogbeat", partition, offset))
        assert isinstance(event, Event)
        alerts.extend(eng.process(event, state))
    assert len(alerts) == 1
    assert eng.stats.duplicates == 1


def test_alert_cap_per_bucket_holds_and_counts() -> None:
    eng = engine(alert_cap=2, cap_window_ms=300_000)
    docs = []
    for i in range(3):
        guid = f"{{cap-{i}}}"
        docs += [start(guid=guid, t=T0 + i), net(guid=guid, t=T0 + 10 + i)]
    for i in range(2):  # the next 5-minute bucket has its own budget
        guid = f"{{cap-next-{i}}}"
        docs += [start(guid=guid, t=T0 + 300_000 + i), net(guid=guid, t=T0 + 300_010 + i)]
    alerts = feed(eng, docs)
    assert len(alerts) == 4
    assert eng.stats.held_by_cap == 1
    assert eng.stats.alerts == 4


def test_alert_cap_zero_is_unlimited() -> None:
    docs = []
    for i in range(150):
        docs += [start(guid=f"{{u-{i}}}", t=T0 + i), net(guid=f"{{u-{i}}}", t=T0 + i + 1)]
    assert alerts_for(docs, alert_cap=0) == 150
    assert alerts_for(docs) == 100  # default: 100 per 5-minute bucket


def test_executable_letter_case_differs_between_events_of_one_process() -> None:
    # Seen in the Empire recording: C:\windows\... vs C:\Windows\... for one ProcessGuid.
    s = _with(start(), "process.name", "msbuild.exe")
    s = _with(s, "process.executable", MSBUILD.lower())
    assert alerts_for([s, net()]) == 1
