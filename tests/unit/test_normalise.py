"""Shipper shapes (docs/semantics.md, Inputs) and event time."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from engine_helpers import T0, alerts_for, engine, iso, net, start

from app.engine import Event, Reject, Source
from app.engine.normalise import View
from app.engine.timestamps import format_timestamp_ms, parse_timestamp_ms

GUID = "{908ccbeb-14be-6668-080e-000000000800}"
IMAGE = "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\MSBuild.exe"


def sysmon_data(event_id: int, utc: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ProcessGuid": GUID,
        "ProcessId": "4242",
        "Image": IMAGE,
        "User": "CORP\\alice",
        "UtcTime": utc,
    }
    if event_id == 3:
        data |= {
            "DestinationIp": "185.220.101.47",
            "DestinationPort": "443",
            "Initiated": "true",
            "Protocol": "tcp",
        }
    if event_id == 22:
        data |= {"QueryName": "evil.example", "QueryResults": "::ffff:1.2.3.4;"}
    return data


def wlb8(event_id: int, utc: str, ts: str = "2024-06-11T09:30:00.000Z") -> dict[str, Any]:
    return {
        "@timestamp": ts,
        "agent": {"type": "winlogbeat", "version": "8.14.0"},
        "winlog": {
            "channel": "Microsoft-Windows-Sysmon/Operational",
            "provider_name": "Microsoft-Windows-Sysmon",
            "event_id": str(event_id),
            "computer_name": "WS-01.corp.local",
            "user": {"identifier": "S-1-5-18"},
            "event_data": sysmon_data(event_id, utc),
        },
    }


def wlb6(event_id: int, utc: str) -> dict[str, Any]:
    return {
        "@timestamp": "2019-05-18T20:36:46.254Z",
        "event_id": event_id,
        "log_name": "Microsoft-Windows-Sysmon/Operational",
        "source_name": "Microsoft-Windows-Sysmon",
        "computer_name": "HFDC01.shire.com",
        "host": {"name": "WECserver"},
        "event_data": sysmon_data(event_id, utc),
    }


def nxlog(event_id: int, utc: str) -> dict[str, Any]:
    return {
        "@timestamp": "2020-09-20T21:39:26.180Z",
        "EventID": event_id,
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "SourceName": "Microsoft-Windows-Sysmon",
        "Hostname": "WORKSTATION6.theshire.local",
        "UserID": "S-1-5-18",
    } | sysmon_data(event_id, utc)


@pytest.mark.parametrize("shape", [wlb8, wlb6, nxlog])
def test_raw_sysmon_shapes_are_mapped_like_elastics_pipeline(shape: Any) -> None:
    view = View(shape(1, "2024-06-11 09:02:11.357"))
    assert view.values("event.category") == ["process"]
    assert view.values("event.type") == ["start"]
    assert view.values("process.entity_id") == [GUID]
    assert view.values("process.executable") == [IMAGE]
    assert view.values("process.name") == ["MSBuild.exe"]
    assert view.values("process.pid") == [4242]
    assert view.values("user.name") == ["alice"]
    assert view.values("user.domain") == ["CORP"]
    assert view.values("host.os.type") == ["windows"]
    assert view.timestamp_ms() == parse_timestamp_ms("2024-06-11T09:02:11.357Z")
    network = View(shape(3, "2024-06-11 09:02:12.000"))
    assert network.values("event.category") == ["network"]
    assert network.values("event.type") == ["connection", "start", "protocol"]
    assert network.values("destination.ip") == ["185.220.101.47"]
    assert network.values("destination.port") == [443]
    assert network.values("network.direction") == ["egress"]
    dns = View(shape(22, "2024-06-11 09:02:12.000"))
    assert dns.values("event.type") == ["connection", "protocol", "info"]
    assert dns.values("destination.ip") == []
    assert dns.values("dns.question.name") == ["evil.example"]


@pytest.mark.parametrize("shape", [wlb8, wlb6, nxlog])
def test_raw_sysmon_pairs_alert(shape: Any) -> None:
    docs = [shape(1, "2024-06-11 09:02:11.357"), shape(3, "2024-06-11 09:02:12.000")]
    alerts = alerts_for(docs)
    assert alerts == 1
    assert alerts_for([shape(1, "2024-06-11 09:02:11.357"), shape(22, "2024-06-11 09:02:13")]) == 1


def test_winlogbeat6_endpoint_name_not_collector() -> None:
    assert View(wlb6(1, "2019-05-18 20:35:52.569")).values("host.name") == ["HFDC01.shire.com"]


def test_utc_time_is_event_time_with_timestamp_fallback() -> None:
    doc = wlb8(1, "2024-06-11 09:02:11.357", ts="2024-06-11T09:30:00.000Z")
    assert View(doc).timestamp_ms() == parse_timestamp_ms("2024-06-11T09:02:11.357Z")
    del doc["winlog"]["event_data"]["UtcTime"]
    assert View(doc).timestamp_ms() == parse_timestamp_ms("2024-06-11T09:30:00.000Z")


def test_non_sysmon_raw_event_is_not_mapped() -> None:
    doc = nxlog(1, "2020-09-20 21:39:24.350") | {
        "Channel": "Security",
        "SourceName": "Microsoft-Windows-Security-Auditing",
    }
    assert View(doc).values("event.category") == []


def test_winlogbeat7_ecs_is_read_as_is() -> None:
    doc = start() | {"winlog": {"event_data": {"Image": "C:\\other.exe"}, "event_id": 1}}
    assert View(doc).values("process.name") == ["MSBuild.exe"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-06-11T09:02:11.357Z", "2024-06-11T09:02:11.357Z"),
        ("2024-06-11T09:02:11.3579999Z", "2024-06-11T09:02:11.357Z"),  # Defend: 7 digits
        ("2024-06-11T09:02:11Z", "2024-06-11T09:02:11.000Z"),
        ("2024-06-11T11:02:11.357+02:00", "2024-06-11T09:02:11.357Z"),
        ("2024-06-11T09:02:11.357", "2024-06-11T09:02:11.357Z"),
        ("2024-06-11 09:02:11.357", "2024-06-11T09:02:11.357Z"),  # Sysmon UtcTime
        ("2024-06-11", "2024-06-11T00:00:00.000Z"),
        (1718096531357, "2024-06-11T09:02:11.357Z"),  # epoch ms
        ("1718096531357", "2024-06-11T09:02:11.357Z"),
    ],
)
def test_timestamps(text: Any, expected: str) -> None:
    ms = parse_timestamp_ms(text)
    assert ms is not None
    assert format_timestamp_ms(ms) == expected


@pytest.mark.parametrize("bad", ["", "yesterday", "2024-13-01T00:00:00Z", "2024-02-30", None, {}])
def test_bad_timestamps(bad: Any) -> None:
    assert parse_timestamp_ms(bad) is None


def test_seven_digit_timestamps_order_at_millisecond_precision() -> None:
    s = start() | {"@timestamp": "2024-06-11T09:02:11.3579999Z"}
    n = net() | {"@timestamp": "2024-06-11T09:02:11.3570001Z"}
    assert alerts_for([n, s]) == 1  # same millisecond: start-then-network


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not_json"),
        (b"[1, 2]", "not_object"),
        (b'"MSBuild.exe"', "not_object"),
        (b'{"process": {"name": "MSBuild.exe"', "not_json"),
        (b"\xff\xfe{}", "not_utf8"),
        (b"", "empty"),
    ],
)
def test_malformed_records_are_rejects(raw: bytes, reason: str) -> None:
    eng = engine()
    result = eng.decode(raw, Source("t", 3, 7))
    assert isinstance(result, Reject)
    assert result.reason == reason
    assert eng.stats.rejected == {reason: 1}


def test_bad_timestamp_and_too_large_are_rejects() -> None:
    eng = engine(max_event_bytes=10_000)
    bad = start() | {"@timestamp": "soon"}
    assert eng.decode(orjson.dumps(bad), Source("t", 0, 0)) == Reject(
        "bad_timestamp", "cannot read event time of {11111111-0000-0000-0000-000000000001}"
    )
    huge = start() | {"pad": "x" * 20_000}
    result = eng.decode(orjson.dumps(huge), Source("t", 0, 1))
    assert isinstance(result, Reject) and result.reason == "too_large"


def test_irrelevant_records_are_dropped_and_counted() -> None:
    eng = engine()
    assert eng.decode(orjson.dumps(net(name="chrome.exe")), Source("t", 0, 0)) is None
    assert eng.decode(b'{"text": "msbuild.exe mentioned"}', Source("t", 0, 1)) is None
    assert eng.stats.dropped == 2


def test_event_round_trips_through_bytes() -> None:
    eng = engine()
    event = eng.decode(orjson.dumps(net(t=T0 + 5)), Source("winlogbeat", 4, 99))
    assert isinstance(event, Event)
    assert Event.from_bytes(event.to_bytes()) == event
    assert event.source == Source("winlogbeat", 4, 99)
    assert event.timestamp_ms == T0 + 5
    assert event.fields["destination.ip"] == "93.184.216.34"
    assert event.original is not None and iso(event.timestamp_ms) == event.original["@timestamp"]
