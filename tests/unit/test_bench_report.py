"""The bench's arithmetic: the numbers the issue's goals are judged by."""

from __future__ import annotations

import math

import pytest
from rich.console import Console

from devtools.bench import report


def test_median_ignores_missing_and_nan() -> None:
    assert report.median([3.0, 1.0, 2.0]) == 2.0
    assert report.median([4.0, 1.0]) == 2.5
    assert report.median([]) is None
    assert report.median([math.nan, 5.0]) == 5.0


@pytest.mark.parametrize(
    ("q", "want"),
    [(0, 1.0), (50, 50.5), (100, 100.0), (99, 99.01), (90, 90.1)],
)
def test_percentile_interpolates_like_numpy(q: float, want: float) -> None:
    values = [float(v) for v in range(100, 0, -1)]  # unsorted input
    assert report.percentile(values, q) == pytest.approx(want)


def test_percentile_edges() -> None:
    assert report.percentile([], 99) is None
    assert report.percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        report.percentile([1.0], 101)


def test_rate_and_ratio() -> None:
    assert report.rate(1000, 2.0) == 500.0
    assert report.rate(1000, 0.0) is None
    assert report.rate(1000, None) is None
    assert report.ratio(45_000.0, 90_000.0) == 0.5
    assert report.ratio(None, 90_000.0) is None
    assert report.ratio(1.0, 0.0) is None


def test_row_reports_median_of_rates() -> None:
    row = report.Row("x", 1000, seconds=[1.0, 2.0, 4.0, 0.5])
    assert row.rates == [1000.0, 500.0, 250.0, 2000.0]
    assert row.events_per_s == 750.0  # median of the rates, not events / median seconds
    assert row.median_seconds == 1.5
    assert report.Row("empty", 10).events_per_s is None


def test_latency_summary() -> None:
    out = report.latency_summary([float(v) for v in range(1, 101)])
    assert out["count"] == 100
    assert out["p50_ms"] == 50.5
    assert out["p99_ms"] == 99.0
    assert out["max_ms"] == 100.0
    empty = report.latency_summary([])
    assert empty == {"count": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}


def _rows() -> tuple[report.Row, report.Row, report.Row, report.Row]:
    return (
        report.Row("baseline", 1000, seconds=[0.01, 0.012, 0.011]),
        report.Row("consume", 1000, seconds=[0.005, 0.005, 0.005]),
        report.Row("worker", 1000, seconds=[0.02, 0.025, 0.022]),
        report.Row("engine", 1000, seconds=[0.004, 0.005, 0.006]),
    )


def test_summary_has_the_issue_keys_and_consistent_ratio() -> None:
    base, raw, worker, engine = _rows()
    out = report.summary(
        events=1000,
        baseline=base,
        consume_only=raw,
        worker=worker,
        engine=engine,
        latency={"p50_ms": 120.0, "p99_ms": 480.0},
        alerts_expected=10,
        alerts_seen=10,
        alert_duplicates=0,
        repeat=3,
        machine={"cpu_count": 2},
        extra={"seed": 1},
    )
    for key in (
        "events",
        "events_per_s",
        "baseline_events_per_s",
        "ratio",
        "p50_latency_ms",
        "p99_latency_ms",
        "alerts_expected",
        "alerts_seen",
        "baseline_consume_only_events_per_s",
        "repeat",
        "machine",
    ):
        assert key in out
    assert out["events_per_s"] == pytest.approx(1000 / 0.022, rel=1e-3)
    assert out["baseline_events_per_s"] == pytest.approx(1000 / 0.011, rel=1e-3)
    assert out["ratio"] == pytest.approx(0.5, abs=1e-3)
    assert out["p99_latency_ms"] == 480.0
    assert len(out["runs"]["worker_events_per_s"]) == 3
    assert out["seed"] == 1


def test_summary_without_latency_or_worker_result() -> None:
    base, raw, _, _ = _rows()
    out = report.summary(
        events=1000,
        baseline=base,
        consume_only=raw,
        worker=report.Row("worker", 1000),
        engine=None,
        latency=None,
        alerts_expected=1,
        alerts_seen=0,
        alert_duplicates=0,
        repeat=1,
        machine={},
    )
    assert out["events_per_s"] is None
    assert out["ratio"] is None
    assert out["p99_latency_ms"] is None
    assert out["detect_engine_events_per_s"] is None


def test_table_renders_every_phase() -> None:
    rows = _rows()
    console = Console(width=200, record=True)
    console.print(report.build_table(rows, rows[0].events_per_s, "bench"))
    text = console.export_text()
    for row in rows:
        assert row.phase in text
    assert "1.00" in text  # the baseline against itself


def test_storm_summary_takes_medians_of_the_runs() -> None:
    from devtools.bench.runner import storm_summary
    from devtools.bench.storm import StormRun

    def run(storm_s: float, ready_s: float) -> StormRun:
        return StormRun(
            1000, storm_s, storm_s + 1, ready_s, ready_s + 1, ready_s + 2, 0.5, 1000, 0, 0
        )

    summary = storm_summary([run(1.0, 5.0), run(4.0, 9.0), run(2.0, 6.0)])
    assert summary is not None
    assert summary["starts_per_s"] == 500.0  # 1000, 250, 500 starts/s
    assert summary["restart_to_ready_s"] == 6.0
    assert summary["restart_to_all_alerts_s"] == 8.0
    assert len(summary["runs"]) == 3
    assert storm_summary([]) is None
