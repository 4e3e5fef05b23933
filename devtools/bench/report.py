"""Pure arithmetic and presentation of the benchmark: medians, percentiles, table, JSON.

Kept free of Kafka and subprocesses so the numbers the issue's goals are judged by
(ratio, p99) are computed by code with unit tests, not by ad-hoc expressions in a loop.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table


def median(values: Sequence[float]) -> float | None:
    """The median of the repeats (None when a phase did not run): robust to one noisy run
    on a shared 2-core machine, where a mean would follow the outlier."""
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(clean) if clean else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between closest ranks.

    Interpolated (numpy's default) rather than nearest-rank so that p99 of a few hundred
    latencies moves smoothly with the data instead of jumping to the maximum."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {q}")
    data = sorted(values)
    if not data:
        return None
    if len(data) == 1:
        return float(data[0])
    pos = (len(data) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return float(data[lo] + (data[hi] - data[lo]) * (pos - lo))


def rate(events: int, seconds: float | None) -> float | None:
    """events per second, None when the duration is unknown or not positive."""
    if seconds is None or seconds <= 0:
        return None
    return events / seconds


def ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or not baseline:
        return None
    return value / baseline


@dataclass
class Row:
    """One line of the table: a phase measured `repeat` times, reported by its median."""

    phase: str
    events: int
    seconds: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def rates(self) -> list[float]:
        return [r for s in self.seconds if (r := rate(self.events, s)) is not None]

    @property
    def median_seconds(self) -> float | None:
        return median(self.seconds)

    @property
    def events_per_s(self) -> float | None:
        """Median of the per-repeat rates (not events / median seconds: the same for odd
        repeat counts, and the honest one for even counts)."""
        return median(self.rates)


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def build_table(rows: Sequence[Row], baseline: float | None, title: str) -> Table:
    """A rich table: phase, events, seconds (median), events/s (median), ratio vs baseline."""
    table = Table(title=title, title_justify="left")
    table.add_column("phase")
    table.add_column("events", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("events/s", justify="right")
    table.add_column("vs baseline", justify="right")
    table.add_column("runs (events/s)", overflow="fold")
    table.add_column("note", overflow="fold")
    for row in rows:
        eps = row.events_per_s
        r = ratio(eps, baseline)
        table.add_row(
            row.phase,
            f"{row.events:,}",
            _fmt(row.median_seconds, 2),
            _fmt(eps),
            "-" if r is None else f"{r:.2f}",
            ", ".join(_fmt(x) for x in row.rates) or "-",
            row.note,
        )
    return table


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | int | None]:
    """p50/p90/p99/max and the count: p99 is the issue's goal (< 1 s at 5,000 events/s)."""
    return {
        "count": len(latencies_ms),
        "p50_ms": round_or_none(percentile(latencies_ms, 50)),
        "p90_ms": round_or_none(percentile(latencies_ms, 90)),
        "p99_ms": round_or_none(percentile(latencies_ms, 99)),
        "max_ms": round_or_none(max(latencies_ms) if latencies_ms else None),
    }


def round_or_none(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def summary(
    *,
    events: int,
    baseline: Row,
    consume_only: Row,
    worker: Row,
    engine: Row | None,
    latency: dict[str, Any] | None,
    alerts_expected: int,
    alerts_seen: int,
    alert_duplicates: int,
    repeat: int,
    machine: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The one JSON object `--json` prints last; the keys the issue names come first."""
    eps = worker.events_per_s
    base = baseline.events_per_s
    lat = latency or {}
    out: dict[str, Any] = {
        "events": events,
        "events_per_s": round_or_none(eps),
        "baseline_events_per_s": round_or_none(base),
        "ratio": None if ratio(eps, base) is None else round(ratio(eps, base) or 0.0, 3),
        "p50_latency_ms": lat.get("p50_ms"),
        "p99_latency_ms": lat.get("p99_ms"),
        "alerts_expected": alerts_expected,
        "alerts_seen": alerts_seen,
        "alert_duplicates": alert_duplicates,
        "baseline_consume_only_events_per_s": round_or_none(consume_only.events_per_s),
        "detect_engine_events_per_s": round_or_none(engine.events_per_s) if engine else None,
        "repeat": repeat,
        "runs": {
            "worker_events_per_s": [round_or_none(r) for r in worker.rates],
            "worker_seconds": [round_or_none(s, 3) for s in worker.seconds],
            "baseline_events_per_s": [round_or_none(r) for r in baseline.rates],
            "baseline_consume_only_events_per_s": [round_or_none(r) for r in consume_only.rates],
            "detect_engine_events_per_s": [round_or_none(r) for r in engine.rates]
            if engine
            else [],
        },
        "latency": latency,
        "machine": machine,
    }
    if extra:
        out.update(extra)
    return out
