"""The reference answer: which MSBuild starts the rule must alert on."""

from __future__ import annotations

import calendar
import ipaddress
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from devtools.synth.common import _SYSMON_CHANNEL, TTL_MS

# --------------------------------------------------------------------------- oracle


def _ts_ms(value: str) -> int:
    """ms since the epoch of an ISO-8601 'Z' timestamp or a Sysmon 'YYYY-MM-DD HH:MM:SS.fff'."""
    v = value.rstrip("Z").replace("T", " ")
    whole, _, frac = v.partition(".")
    t = time.strptime(whole, "%Y-%m-%d %H:%M:%S")
    return calendar.timegm(t) * 1000 + int((frac + "000")[:3])


def _sysmon_view(
    eid: int, ed: Mapping[str, Any], fallback_ts: str | None
) -> tuple[Any, ...] | None:
    if eid not in (1, 3, 22):
        return None
    image = str(ed.get("Image", ""))
    ts = ed.get("UtcTime") or fallback_ts
    if not ts:
        return None
    kind = "start" if eid == 1 else "network"
    dst = ed.get("DestinationIp") if eid == 3 else None
    return ed.get("ProcessGuid"), image.rsplit("\\", 1)[-1], kind, dst, _ts_ms(str(ts))


def rule_view(doc: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """(entity id, process name, 'start'|'network'|None, destination ip, event ms) of a record
    in any shape of docs/semantics.md (Inputs), or None when the rule cannot use it.

    A deliberately small, independent reading of the shapes (not the engine's) used as a test
    oracle for the generator and the samples."""
    wl = doc.get("winlog")
    if isinstance(wl, dict) and "process" in doc:  # Winlogbeat 7 Sysmon module / Defend-like ECS
        pass
    elif isinstance(wl, dict):  # Winlogbeat 8 raw
        return _sysmon_view(int(wl.get("event_id", 0)), wl.get("event_data", {}), None)
    elif "event_data" in doc and "event_id" in doc:  # Winlogbeat 6 raw
        return _sysmon_view(int(doc["event_id"]), doc["event_data"], None)
    elif "EventID" in doc:  # NXLog flat
        if doc.get("Channel") != _SYSMON_CHANNEL:
            return None
        return _sysmon_view(int(doc["EventID"]), doc, None)
    ev = doc.get("event", {})
    proc = doc.get("process", {})
    cats = ev.get("category", [])
    cats = [cats] if isinstance(cats, str) else cats
    types = ev.get("type", [])
    types = [types] if isinstance(types, str) else types
    if "process" in cats and "start" in types:
        kind = "start"
    elif "network" in cats:
        kind = "network"
    else:
        kind = None
    dst = doc.get("destination", {}).get("ip")
    return proc.get("entity_id"), proc.get("name", ""), kind, dst, _ts_ms(doc["@timestamp"])


def _excluded(dst: Any) -> bool:
    """cidrmatch(destination.ip, "127.0.0.1", "::1"); missing or unparsable never matches."""
    if not isinstance(dst, str):
        return False
    try:
        ip = ipaddress.ip_address(dst)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip in (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


def reference_alerts(values: Iterable[bytes], ttl_ms: int = TTL_MS) -> set[str]:
    """Entity ids the rule alerts on over a set of record values, order-independent: the
    oracle for docs/semantics.md (latest pending start pairs; one alert per start)."""
    per: dict[str, list[tuple[int, int]]] = {}
    for value in set(values):  # exact duplicates are one event
        v = rule_view(orjson.loads(value))
        if v is None or not v[0] or str(v[1]).lower() != "msbuild.exe" or v[2] is None:
            continue
        if v[2] == "network" and _excluded(v[3]):
            continue
        per.setdefault(v[0], []).append((v[4], 0 if v[2] == "start" else 1))
    alerts = set()
    for eid, evs in per.items():
        pending: list[int] = []
        for ms, kind in sorted(evs):  # a start sorts before a network event of the same ms
            if kind == 0:
                pending.append(ms)
            else:
                live = [s for s in pending if s <= ms <= s + ttl_ms]
                if live:
                    alerts.add(eid)
                    pending = [s for s in pending if s > max(live)]
    return alerts
