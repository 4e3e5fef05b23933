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

from app.engine import Engine, Event, MemoryState, load_rule
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
    data: Sequence[bytes], *, ttl_ms: int = 540_000, lateness_ms: int = 60_000
) -> EngineRun:
    """One pass of detect's loop over pre-built blocks, with a fresh engine and state."""
    engine = Engine(load_rule(None), ttl_ms, lateness_ms, 0, 300_000)
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
            if type(result) is Event:
                for alert in process(result, state):
                    alerts += 1
                    ids.add(alert["alert"]["id"])
    elapsed = time.perf_counter() - started
    return EngineRun(engine.stats.received, elapsed, alerts, len(ids))
