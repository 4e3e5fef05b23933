"""Both results side by side: what each found, why the schedule missed, how much later."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from app.coverage.recording import Line
from app.coverage.schedule import Schedule, ScheduleResult
from app.coverage.stream import StreamResult
from app.durations import format_duration
from app.engine.rule import Rule

REASONS = ("window", "ingest_delay", "max_signals")
"""Why the runs missed a sequence the stream found (README, `seqwatch coverage`):
`max_signals`, a run found it but returned `max_signals` others first; `ingest_delay`, an
event was indexed after the last run whose window held its time, or a run's window held
every event's time but not every event was indexed by then; `window`, otherwise: no
run's window held the times of all its events."""


@dataclass
class RuleCoverage:
    rule: Rule
    schedule: Schedule
    runs: list[int]
    stream: dict[str, int]
    """alert id -> stream delay (ms), for every stream alert."""
    held_by_cap: int
    scheduled: dict[str, int]
    """alert id -> schedule delay (ms), for every alert a run wrote."""
    missed: list[dict[str, Any]] = field(default_factory=list)
    only_schedule: list[dict[str, Any]] = field(default_factory=list)
    sequences: list[dict[str, Any]] = field(default_factory=list)
    """Every alert of either: id, first/last event time, found by, for the plot."""


def _key(rule: Rule, alert: dict[str, Any]) -> str:
    values = []
    for ref in rule.compiled.keys:
        node: Any = alert
        for part in ref.parts:
            node = node.get(part) if isinstance(node, dict) else None
        values.append("" if node is None else str(node))
    return "|".join(values)


def compare(
    rule: Rule,
    schedule: Schedule,
    lines: list[Line],
    scheduled: ScheduleResult,
    streamed: StreamResult,
    ttl_ms: int,
) -> RuleCoverage:
    ingested: dict[str, int] = {}
    for line in lines:
        for event in line.events:
            known = ingested.get(event.digest)
            if known is None or line.ingested_ms < known:
                ingested[event.digest] = line.ingested_ms
    starts = scheduled.runs
    lookback = schedule.lookback_ms
    out = RuleCoverage(
        rule,
        schedule,
        starts,
        stream={i: t - a["seqwatch"]["last_ms"] for i, (t, a) in streamed.found.items()},
        held_by_cap=streamed.held_by_cap,
        scheduled={i: t - a["seqwatch"]["last_ms"] for i, (t, a) in scheduled.found.items()},
    )

    def windowed(t: int) -> bool:
        return any(s - lookback <= t <= s for s in starts)

    def searchable(t: int, at: int) -> bool:
        return any(s - lookback <= t <= s and at <= s for s in starts)

    for alert_id, (when, alert) in streamed.found.items():
        events = [e for e in alert["events"] if not e.get("missing")]
        seq = _sequence(rule, alert, when)
        if alert_id in scheduled.found:
            seq["found_by"] = "both"
            seq["schedule_ms"] = scheduled.found[alert_id][0]
            out.sequences.append(seq)
            continue
        times = [(e["timestamp_ms"], ingested.get(e["digest"], e["timestamp_ms"])) for e in events]
        if alert_id in scheduled.held:
            reason = "max_signals"
        elif any(windowed(t) and not searchable(t, at) for t, at in times) or any(
            all(s - lookback <= t <= s for t, _ in times) for s in starts
        ):
            # An event no run could search in time, or a run whose window held every
            # event's time but not yet every event (the window held it: indexing lost it).
            reason = "ingest_delay"
        else:
            reason = "window"
        seq["found_by"] = "stream"
        seq["reason"] = reason
        out.sequences.append(seq)
        out.missed.append(
            {
                "alert_id": alert_id,
                "rule_id": rule.rule_id,
                "entity_id": seq["key"],
                "reason": reason,
                "first": alert["events"][0].get("@timestamp"),
                "last": events[-1].get("@timestamp"),
            }
        )
    for alert_id, (when, alert) in scheduled.found.items():
        if alert_id in streamed.found:
            continue
        seq = _sequence(rule, alert, None)
        seq["found_by"] = "schedule"
        seq["schedule_ms"] = when
        span = seq["last_ms"] - seq["first_ms"]
        reason = "ttl" if span > ttl_ms else "unexplained"
        out.sequences.append(seq)
        out.only_schedule.append(
            {
                "alert_id": alert_id,
                "rule_id": rule.rule_id,
                "entity_id": seq["key"],
                "reason": reason,
                "detail": f"its events are {format_duration(span)} apart, more than the"
                f" stream's --ttl {format_duration(ttl_ms)}"
                if reason == "ttl"
                else "the stream did not find it",
            }
        )
    return out


def _sequence(rule: Rule, alert: dict[str, Any], stream_ms: int | None) -> dict[str, Any]:
    return {
        "alert_id": alert["alert"]["id"],
        "key": _key(rule, alert),
        "first_ms": alert["seqwatch"]["first_ms"],
        "last_ms": alert["seqwatch"]["last_ms"],
        "stream_ms": stream_ms,
    }


def percentiles(delays_ms: list[int]) -> dict[str, float | None]:
    """p50, p99 and max in seconds (nearest rank), None when there is nothing to rank."""
    if not delays_ms:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(delays_ms)

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)] / 1000, 3)

    return {"p50": rank(0.50), "p99": rank(0.99), "max": round(ordered[-1] / 1000, 3)}


def summary(results: list[RuleCoverage]) -> dict[str, Any]:
    """The JSON object `seqwatch coverage --json` prints last."""
    stream = [d for r in results for d in r.stream.values()]
    scheduled = [d for r in results for d in r.scheduled.values()]
    missed = [m for r in results for m in r.missed]
    by_reason = {reason: 0 for reason in REASONS}
    for m in missed:
        by_reason[m["reason"]] = by_reason.get(m["reason"], 0) + 1
    return {
        "rules": [
            {
                "rule_id": r.rule.rule_id,
                "name": r.rule.name,
                "interval": format_duration(r.schedule.interval_ms),
                "lookback": format_duration(r.schedule.lookback_ms),
                "max_signals": r.schedule.max_signals,
                "run_delay": format_duration(r.schedule.run_delay_ms),
            }
            for r in results
        ],
        "stream": {
            "alerts": len(stream),
            "held_by_cap": sum(r.held_by_cap for r in results),
            "delay_s": percentiles(stream),
        },
        "schedule": {
            "alerts": len(scheduled),
            "runs": sum(len(r.runs) for r in results),
            "delay_s": percentiles(scheduled),
        },
        "both": sum(1 for r in results for i in r.stream if i in r.scheduled),
        "missed": missed,
        "missed_by_reason": by_reason,
        "only_schedule": [o for r in results for o in r.only_schedule],
    }


def table(data: dict[str, Any]) -> str:
    """The report as text for stdout."""
    stream, schedule = data["stream"], data["schedule"]
    rules = data["rules"]
    lines = []
    for r in rules:
        lines.append(
            f"rule {r['name']!r}: every {r['interval']} over the last {r['lookback']},"
            f" max_signals {r['max_signals']}, runs {r['run_delay']} late"
        )

    def delays(d: dict[str, Any]) -> str:
        if d["p50"] is None:
            return "-"
        return f"p50 {d['p50']:,.1f} s   p99 {d['p99']:,.1f} s   max {d['max']:,.1f} s"

    lines += [
        "",
        f"{'':24}{'alerts':>8}   detection delay (alert - last event)",
        f"{'stream (seqwatch)':24}{stream['alerts']:>8}   {delays(stream['delay_s'])}",
        f"{'schedule (Kibana)':24}{schedule['alerts']:>8}   {delays(schedule['delay_s'])}"
        f"   ({schedule['runs']} runs)",
        f"{'found by both':24}{data['both']:>8}",
        f"{'missed by the schedule':24}{len(data['missed']):>8}   "
        + ", ".join(f"{k} {v}" for k, v in data["missed_by_reason"].items()),
        f"{'only the schedule':24}{len(data['only_schedule']):>8}",
    ]
    if "records" in data:
        lines.append(
            f"{'records read':24}{data['records']:>8}   unreadable {data['unreadable']}"
            " (not a JSON object with an event time: neither side read them)"
        )
    for m in data["missed"][:20]:
        lines.append(f"  missed {m['entity_id']} ({m['first']} .. {m['last']}): {m['reason']}")
    if len(data["missed"]) > 20:
        lines.append(f"  ... and {len(data['missed']) - 20} more (--json lists them all)")
    for o in data["only_schedule"][:20]:
        lines.append(f"  only the schedule: {o['entity_id']}: {o['detail']}")
    return "\n".join(lines)
