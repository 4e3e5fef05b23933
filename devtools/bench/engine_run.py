"""The `seqwatch detect` engine alone, in-process, over the bench's records.

The issue's third goal (>= 200,000 events/s offline) is about the engine, not Kafka: this
row runs exactly what `seqwatch detect` runs per block (Engine.scan_block, then
Engine.process for the candidates) over the same records, as one NDJSON recording in
arrival order, cut in detect's 512 KiB blocks. Building the blocks is not timed; reading a
file would add only a memcpy per block.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from app.engine import EngineSettings, Event, MemoryState, load_rule
from app.engine.rule import load_rules
from app.engine.ruleset import RuleSet
from devtools.synth import Record

BLOCK_BYTES = 1 << 19
"""app/cli/detect.py's _CHUNK: blocks of whole lines of about this size."""


def blocks(records: Sequence[Record], size: int = BLOCK_BYTES) -> list[bytes]:
    """Whole NDJSON lines, about `size` bytes per block, every line newline-terminated."""
    out: list[bytes] = []
    chunk: list[bytes] = []
    total = 0
    for rec in records:
        chunk.append(rec.value)
        total += len(rec.value) + 1
        if total >= size:
            out.append(b"\n".join(chunk) + b"\n")
            chunk, total = [], 0
    if chunk:
        out.append(b"\n".join(chunk) + b"\n")
    return out


@dataclass
class EngineRun:
    events: int
    seconds: float
    alerts: int
    alert_ids: int


def run_engine(
    data: Sequence[bytes],
    *,
    ttl_ms: int = 540_000,
    lateness_ms: int = 60_000,
    rules: Sequence[str] = (),
) -> EngineRun:
    """One pass of detect's loop over pre-built blocks, with a fresh engine and state;
    with `rules` (folders or files), the bundled rule and every rule under them."""
    settings = EngineSettings(ttl_ms=ttl_ms, lateness_ms=lateness_ms, alert_cap=0)
    base = load_rule(None)
    found = [r for r in load_rules(rules).rules if r.rule_id != base.rule_id] if rules else []
    engine = RuleSet([base, *found], settings)
    state = MemoryState(serialize=False)
    scan, process = engine.scan_block, engine.process
    ids: set[str] = set()
    alerts = 0
    line = 1
    started = time.perf_counter()
    for block in data:
        newlines, results = scan(block, "bench", line)
        line += newlines
        for result in results:
            for event in (result,) if type(result) is Event else result:
                if type(event) is not Event:
                    continue
                for alert in process(event, state):
                    if alert["rule"]["rule_id"] == base.rule_id:
                        alerts += 1
                        ids.add(alert["alert"]["id"])
    for alert in engine.finish(state):
        if alert["rule"]["rule_id"] == base.rule_id:
            alerts += 1
            ids.add(alert["alert"]["id"])
    elapsed = time.perf_counter() - started
    return EngineRun(engine.totals().received, elapsed, alerts, len(ids))
