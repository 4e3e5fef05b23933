"""One batch of one state partition through the engine, with poison records set aside.

A repartition record the state stage cannot read (another version's format, a bug that
raises), or one event of a bundle, must not stop the partition: it would be read again
after every restart and silence every process keyed to it. It goes to the dead-letter
topic with its coordinates and the exception, once (in the batch's transaction), and the
rest of the batch runs as if it had not been there: the batch is run again without it
from the state as it was before the batch, so a half-applied event leaves nothing behind,
and the engine's counters are put back to what they were before the first run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.engine import Event, Reject
from app.engine.event import FormatError, parse_tick, repartition_items
from app.engine.ruleset import RuleSet
from app.worker.state import BatchState, TableState

log = logging.getLogger("seqwatch.worker")

Found = tuple[Any, Event | None, dict[str, Any], float]
"""(the repartition message, its event (None for a tick), an alert it completed, and the
time in seconds of the input record behind it: what detection latency counts from)"""

Poisoned = tuple[Any, bytes, Reject]
"""(the repartition message, the bytes set aside (a bundle's one event, or the record),
why)"""


@dataclass
class BatchResult:
    messages: list[Any]
    cache: BatchState
    alerts: list[Found] = field(default_factory=list)
    poisoned: list[Poisoned] = field(default_factory=list)
    sequenced: int = 0
    watermark_ms: int | None = None


Unit = tuple[int, int]
"""(index of the message in the batch, index of the event in its bundle)"""


def run_batch(engine: RuleSet, state: TableState, messages: list[Any], scope: str) -> BatchResult:
    """Run `messages` (repartition records of one partition, in offset order)."""
    poisoned: dict[Unit, tuple[bytes, Reject]] = {}
    before = engine.checkpoint_stats()
    while True:
        result = BatchResult(messages, BatchState(state))
        failed = _run(engine, messages, scope, poisoned, result)
        if failed is None:
            result.poisoned = [(messages[u[0]], *poisoned[u]) for u in sorted(poisoned)]
            return result
        engine.restore_stats(before)


def _run(
    engine: RuleSet,
    messages: list[Any],
    scope: str,
    poisoned: dict[Unit, tuple[bytes, Reject]],
    result: BatchResult,
) -> Unit | None:
    """One pass; the unit of a newly poisoned event whose effects need undoing, or None."""
    for index, message in enumerate(messages):
        if (index, -1) in poisoned:
            continue
        raw = message.value
        wall_ms = parse_tick(raw)
        if wall_ms is not None:
            alerts = engine.tick(result.cache, scope, wall_ms)
            result.alerts.extend((message, None, alert, time.time()) for alert in alerts)
            continue
        try:
            items = repartition_items(raw)
        except FormatError as exc:  # nothing applied yet: set it aside and go on
            poisoned[index, -1] = (_raw_bytes(raw), Reject("repartition_format", str(exc)))
            continue
        fallback_s = message.timestamp if message.timestamp else time.time()
        for position, item in enumerate(items):
            unit = (index, position)
            if unit in poisoned:
                continue
            try:
                event = Event.from_dict(item)
            except FormatError as exc:
                reject = Reject("repartition_format", str(exc))
                poisoned[unit] = (_item_bytes(raw, items, item), reject)
                continue
            try:
                alerts = engine.process(event, result.cache, scope=scope)
            except Exception as exc:
                log.exception(
                    "the engine failed on %s/%d@%d (event %d); dead-lettering it and running"
                    " the batch again without it",
                    message.topic,
                    message.partition,
                    message.offset,
                    position,
                )
                reject = Reject("state_stage_error", f"{type(exc).__name__}: {exc}")
                poisoned[unit] = (_item_bytes(raw, items, item), reject)
                return unit
            result.sequenced += 1
            if alerts:
                record_ms = item.get("rt")
                record_s = record_ms / 1000 if type(record_ms) is int else fallback_s
                result.alerts.extend((message, event, alert, record_s) for alert in alerts)
            if result.watermark_ms is None or event.timestamp_ms > result.watermark_ms:
                result.watermark_ms = event.timestamp_ms
    return None


def _raw_bytes(raw: Any) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode()
    if isinstance(raw, bytearray | memoryview):
        return bytes(raw)
    return b""


def _item_bytes(raw: Any, items: list[Any], item: Any) -> bytes:
    """What to dead-letter of a poisoned event: the record itself if it held only this
    event, else the event alone (its bundle's others were handled)."""
    if len(items) == 1:
        return _raw_bytes(raw)
    return orjson.dumps(item)
