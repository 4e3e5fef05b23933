"""The same recording through the worker's semantics: arrival order, TTL and lateness.

Records arrive when they were indexed (the shipper writes to Kafka about when it would
have written to Elasticsearch), in recording order among equals. An alert is modelled
at the arrival of the record that completed it; one the engine holds for the watermark
(ordered rules) and releases only at the end, one lateness after its last arrival, as a
quiet partition's tick would release it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.coverage.recording import Line
from app.engine import MemoryState
from app.engine.ruleset import RuleSet


@dataclass
class StreamResult:
    found: dict[str, tuple[int, dict[str, Any]]]
    """alert id -> (modelled alert time, the alert)."""
    held_by_cap: int = 0
    """Alerts the worker's own --alert-cap held back (counted and logged by a worker)."""


def emulate(
    lines: list[Line], engine: RuleSet, lateness_ms: int, latency_ms: int = 0
) -> StreamResult:
    """`latency_ms`: the worker's own, from reading the record to the alert on the topic."""
    held_before = engine.totals().held_by_cap
    arrivals = sorted(lines, key=lambda line: (line.ingested_ms, line.position))
    arrived: dict[str, int] = {}
    state = MemoryState(serialize=False)
    found: dict[str, tuple[int, dict[str, Any]]] = {}
    for line in arrivals:
        for event in line.events:
            arrived.setdefault(event.digest, line.ingested_ms)
            for alert in engine.process(event, state):
                found.setdefault(alert["alert"]["id"], (line.ingested_ms + latency_ms, alert))
    for alert in engine.finish(state):
        last = max(arrived.get(e["digest"], 0) for e in alert["events"] if not e.get("missing"))
        found.setdefault(alert["alert"]["id"], (last + lateness_ms + latency_ms, alert))
    return StreamResult(found, engine.totals().held_by_cap - held_before)
