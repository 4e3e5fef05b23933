"""The ingest stage's decode alone, in-process: batch scan against record by record.

What the ingest process does with a polled batch before any transaction: the records a
batch scan (`BlockScanner.scan_records`) cannot rule out are decoded one by one; the
baseline row decodes every record one by one (the ingest stage before the batch scan,
and still its path for a batch that is not clean). Same records, in the ingest stage's
parts of 5,000 (`PART_RECORDS`), in arrival order; the candidate counts must agree.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from app.engine import EngineSettings, Source, load_rule
from app.engine.rule import load_rules
from app.engine.ruleset import RuleSet
from app.worker.ingest import PART_RECORDS
from devtools.synth import Record


@dataclass
class DecodeRun:
    seconds: float
    kept: int
    """Records decode() kept (events or rejects): equal in both modes."""


def engine_for(rules: Sequence[str] = ()) -> RuleSet:
    base = load_rule(None)
    found = [r for r in load_rules(rules).rules if r.rule_id != base.rule_id] if rules else []
    return RuleSet([base, *found], EngineSettings(alert_cap=0))


def run_decode(records: Sequence[Record], *, batched: bool, rules: Sequence[str] = ()) -> DecodeRun:
    engine = engine_for(rules)
    values = [r.value for r in records]
    batches = [values[i : i + PART_RECORDS] for i in range(0, len(values), PART_RECORDS)]
    decode = engine.decode
    kept = 0
    started = time.perf_counter()
    for batch in batches:
        picks = engine.scan_records(batch) if batched else None
        for i in range(len(batch)) if picks is None else picks:
            if decode(batch[i], Source("bench", 0, i)) is not None:
                kept += 1
    return DecodeRun(time.perf_counter() - started, kept)
