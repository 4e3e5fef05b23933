"""Kibana's execution of a scheduled EQL rule, emulated on a recording.

A run starts at a scheduled time plus the task manager's delay (`run_delay_ms`), and the
next one is due an interval after this one *started* (Kibana's task manager:
`intervalFromDate(startedAt, interval)`, x-pack/plugins/task_manager task_runner.ts), so
a delay is never caught up. A run searches the events whose `@timestamp` lies in
[start - lookback, start] and that were indexed by its start, matches sequences in the
window with Elasticsearch's semantics (seqwatch's engine in `detect`'s mode), and keeps
the first `max_signals` of them: Kibana asks for `size = max_signals` (EQL rules before
8.2, elastic/kibana#126822), and Elasticsearch's `SequenceMatcher` stops once that many
sequences are complete, which is in the order of their last event (sequences complete as
the last stage's hits are matched, in ascending order). Alerts of overlapping runs are
deduplicated by id, as Kibana does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.cli.detect import result_order
from app.coverage.recording import Line
from app.engine import MemoryState
from app.engine.ruleset import RuleSet


@dataclass(frozen=True)
class Schedule:
    interval_ms: int
    lookback_ms: int
    max_signals: int
    first_run_ms: int | None = None
    """The first scheduled run; None: the first event's time rounded down to the interval."""
    run_delay_ms: int = 0


@dataclass
class ScheduleResult:
    runs: list[int]
    """The start of each run."""
    found: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    """alert id -> (start of the first run that wrote it, the alert)."""
    held: dict[str, int] = field(default_factory=dict)
    """alert id -> start of a run that found it but cut it off at max_signals."""


def run_starts(schedule: Schedule, first_ms: int, until_ms: int) -> list[int]:
    """Start times of the runs, from the first until one starts at or after `until_ms`."""
    interval = schedule.interval_ms
    first = schedule.first_run_ms
    if first is None:
        first = first_ms - first_ms % interval
    start = first + schedule.run_delay_ms
    starts = [start]
    while start < until_ms:
        start += interval + schedule.run_delay_ms
        starts.append(start)
    return starts


def emulate(
    lines: list[Line], engine: RuleSet, schedule: Schedule, first_ms: int, until_ms: int
) -> ScheduleResult:
    """Every run of the schedule over `lines` (one rule's engine, unlimited alert cap)."""
    ordered = sorted(lines, key=lambda line: (line.timestamp_ms, line.position))
    times = [line.timestamp_ms for line in ordered]
    result = ScheduleResult(runs=[])
    cap = schedule.max_signals
    low = 0
    for start in run_starts(schedule, first_ms, until_ms):
        result.runs.append(start)
        begin = start - schedule.lookback_ms
        while low < len(times) and times[low] < begin:
            low += 1
        state = MemoryState(serialize=False)
        answer: list[dict[str, Any]] = []
        for line in ordered[low:]:
            if line.timestamp_ms > start:
                break
            if line.ingested_ms > start:
                continue  # not searchable yet
            for event in line.events:
                answer.extend(engine.process(event, state))
        answer.extend(engine.finish(state))
        answer.sort(key=result_order)
        kept, cut = answer[:cap], answer[cap:]
        for alert in kept:
            result.found.setdefault(alert["alert"]["id"], (start, alert))
        for alert in cut:
            result.held.setdefault(alert["alert"]["id"], start)
    return result
