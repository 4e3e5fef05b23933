"""The alert document (docs/semantics.md, Alerts), built from the two events of a sequence.

`alert.id` deliberately differs from a coordinates-based id: it hashes the rule id and the
content digest (sha256 of the raw record bytes) of the sequence's *first* event, not the
source coordinates of both. Content, not coordinates, so `seqwatch detect` over a recording
and the worker over a topic give the same id, and so does an exact duplicate redelivered
at another offset. The first event only, because a start alerts at most once while which
of several qualifying network events completes it can depend on arrival order across
partitions: the id must not. The coordinates are still reported in `events[i]`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from app.engine.rule import Rule
from app.engine.timestamps import format_timestamp_ms

# Fields reported at the top level of the alert when both events agree on them.
SHARED_FIELDS: tuple[str, ...] = (
    "host.name",
    "host.id",
    "host.hostname",
    "host.os.type",
    "process.entity_id",
    "process.name",
    "process.executable",
    "process.pid",
    "user.name",
    "user.domain",
    "user.id",
)
# Fields reported from the network (last) event.
NETWORK_FIELDS: tuple[str, ...] = (
    "destination.ip",
    "destination.port",
    "destination.domain",
    "source.ip",
    "source.port",
    "network.direction",
    "network.transport",
    "dns.question.name",
)
# Everything the alert may report: decode() captures these for each event.
ALERT_FIELDS: tuple[str, ...] = (*SHARED_FIELDS, *NETWORK_FIELDS, "process.command_line")


def alert_id(rule_id: str, digests: list[str]) -> str:
    """Deterministic id of the alert for this rule and these records (by content)."""
    return hashlib.sha256("\n".join([rule_id, *digests]).encode()).hexdigest()


def _put(target: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def _categories(rule: Rule) -> list[str]:
    """The event categories the rule's stages read, in stage order (`any` gives none)."""
    out: list[str] = []
    for stage in rule.compiled.stages:
        if stage.category and stage.category not in out:
            out.append(stage.category)
    return out


def _threat(rule: Rule) -> list[dict[str, Any]]:
    """Kibana's threat list, already in ECS threat.* shape (framework, tactic, technique)."""
    return [dict(entry) for entry in rule.threat]


def _stage(index: int, event: dict[str, Any]) -> dict[str, Any]:
    """One stage's event as the alert reports it.

    The record as received is included up to `Limits.original_bytes`; a larger one is
    referenced by its coordinates (`original_omitted_bytes` says how large it was), and
    `fields_trimmed` names fields cut to their limits, so an alert always fits a topic.
    """
    out: dict[str, Any] = {
        "stage": index + 1,
        "topic": event["src"][0],
        "partition": event["src"][1],
        "offset": event["src"][2],
        "digest": event["d"],
        "@timestamp": format_timestamp_ms(event["t"]),
        "timestamp_ms": event["t"],
        "fields": event["f"],
        "original": event["o"] if "o" in event else event.get("doc"),  # "doc": before 0.2
    }
    if out["original"] is None:
        out["original_omitted_bytes"] = event.get("ob", 0)
    if event.get("tr"):
        out["fields_trimmed"] = event["tr"]
    if event.get("tb") is not None:
        out["tiebreaker"] = event["tb"]
    return out


def build_alert(
    rule: Rule,
    key_fields: dict[str, Any],
    events: list[dict[str, Any] | None],
    now_ms: int,
    scope: str,
) -> dict[str, Any]:
    """An alert for the sequence `events` (Event.to_entry() dicts, in stage order; None
    for a missing-event stage, which the alert shows as `{"stage": n, "missing": true}`)."""
    present = [e for e in events if e is not None]
    first, last = present[0], present[-1]
    ident = alert_id(rule.rule_id, [first["d"]])
    now = format_timestamp_ms(now_ms)
    original_time = format_timestamp_ms(first["t"])
    alert: dict[str, Any] = {
        "@timestamp": now,
        "event": {"kind": "alert", "created": now, "category": _categories(rule)},
        "alert": {"id": ident},
        "rule": {
            "id": rule.rule_id,
            "rule_id": rule.rule_id,
            "name": rule.name,
            "version": rule.version,
            "description": rule.description,
            "severity": rule.severity,
            "risk_score": rule.risk_score,
            "tags": list(rule.tags),
            "threat": _threat(rule),
            "query": rule.query,
            "license": rule.license,
            "author": list(rule.author),
        },
    }
    for path in SHARED_FIELDS:
        values = [e["f"].get(path) for e in present]
        if values[0] is not None and all(v == values[0] for v in values):
            _put(alert, path, values[0])
    for path in NETWORK_FIELDS:
        value = last["f"].get(path)
        if value is not None:
            _put(alert, path, value)
    for path, value in key_fields.items():
        _put(alert, path, value)
    alert["events"] = [
        _stage(index, event) if event is not None else {"stage": index + 1, "missing": True}
        for index, event in enumerate(events)
    ]
    alert["seqwatch"] = {"scope": scope, "first_ms": first["t"], "last_ms": last["t"]}
    alert.update(
        {
            "kibana.alert.uuid": ident,
            "kibana.alert.rule.name": rule.name,
            "kibana.alert.rule.rule_id": rule.rule_id,
            "kibana.alert.rule.version": rule.version,
            "kibana.alert.rule.type": "eql",
            "kibana.alert.severity": rule.severity,
            "kibana.alert.risk_score": rule.risk_score,
            "kibana.alert.original_time": original_time,
            "kibana.alert.status": "active",
            "kibana.alert.workflow_status": "open",
            "kibana.alert.reason": (
                f"{rule.name}: sequence by "
                + ", ".join(f"{k}={v}" for k, v in key_fields.items())
                + f" from {original_time} to {format_timestamp_ms(last['t'])}"
                if key_fields
                else f"{rule.name}: event at {original_time}"
            ),
        }
    )
    return alert
