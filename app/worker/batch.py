"""One batch of one state partition through the engine, with poison records set aside.

A repartition record the state stage cannot read (another version's format, a bug that
raises) must not stop the partition: it would be read again after every restart and
silence every process keyed to it. It goes to the dead-letter topic with its coordinates
and the exception, once (in the batch's transaction), and the rest of the batch runs as
if it had not been there: the batch is run again without it from the state as it was
before the batch, so a half-applied event leaves nothing behind, and the engine's
counters are put back to what they were before the first run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from app.engine import Event, Reject
from app.engine.event import FormatError, parse_tick
from app.engine.ruleset import RuleSet
from app.worker.state import BatchState, TableState

log = logging.getLogger("seqwatch.worker")

Found = tuple[Any, Event | None, dict[str, Any]]
"""(the repartition message, its event (None for a tick), an alert it completed)"""


@dataclass
class BatchResult:
    messages: list[Any]
    cache: BatchState
    alerts: list[Found] = field(default_factory=list)
    poisoned: list[tuple[Any, Reject]] = field(default_factory=list)
    sequenced: int = 0
    watermark_ms: int | None = None


def run_batch(engine: RuleSet, state: TableState, messages: list[Any], scope: str) -> BatchResult:
    """Run `messages` (repartition records of one partition, in offset order)."""
    poisoned: dict[int, Reject] = {}
    before = engine.checkpoint_stats()
    while True:
        result = BatchResult(messages, BatchState(state))
        failed = _run(engine, messages, scope, poisoned, result)
        if failed is None:
            result.poisoned = [(messages[i], poisoned[i]) for i in sorted(poisoned)]
            return result
        engine.restore_stats(before)


def _run(
    engine: RuleSet,
    messages: list[Any],
    scope: str,
    poisoned: dict[int, Reject],
    result: BatchResult,
) -> int | None:
    """One pass; the index of a newly poisoned message whose effects need undoing, or None."""
    for index, message in enumerate(messages):
        if index in poisoned:
            continue
        wall_ms = parse_tick(message.value)
        if wall_ms is not None:
            alerts = engine.tick(result.cache, scope, wall_ms)
            result.alerts.extend((message, None, alert) for alert in alerts)
            continue
        try:
            event = Event.from_bytes(message.value)
        except FormatError as exc:  # nothing applied yet: set it aside and go on
            poisoned[index] = Reject("repartition_format", str(exc))
            continue
        try:
            alerts = engine.process(event, result.cache, scope=scope)
        except Exception as exc:
            log.exception(
                "the engine failed on %s/%d@%d; dead-lettering it and running the batch again"
                " without it",
                message.topic,
                message.partition,
                message.offset,
            )
            poisoned[index] = Reject("state_stage_error", f"{type(exc).__name__}: {exc}")
            return index
        result.sequenced += 1
        result.alerts.extend((message, event, alert) for alert in alerts)
        if result.watermark_ms is None or event.timestamp_ms > result.watermark_ms:
            result.watermark_ms = event.timestamp_ms
    return None
