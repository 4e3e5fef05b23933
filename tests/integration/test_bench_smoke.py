"""`seqwatch bench` end to end at a small size: the command the README gives for the
numbers keeps working, and its own checks (every alert once) hold."""

from __future__ import annotations

import orjson

from app.kafka.settings import KafkaSettings
from tests.helpers import run_seqwatch


def test_a_small_bench_run_counts_every_alert_once(kafka: KafkaSettings) -> None:
    result = run_seqwatch(
        "bench",
        "--bootstrap",
        kafka.bootstrap,
        "--events",
        "5000",
        "--repeat",
        "1",
        "--latency-seconds",
        "2",
        "--storm-starts",
        "0",
        "--json",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    summary = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert summary["alerts_expected"] > 0
    assert summary["alerts_seen"] == summary["alerts_expected"]
    assert summary["alert_duplicates"] == 0
    assert summary["problems"] == []
    # the yardstick and the row beside it were measured in the same run
    assert summary["baseline_events_per_s"] > 0
    assert summary["baseline_large_fetch_events_per_s"] > 0
    latency = summary["latency"]
    assert latency["alerts_seen"] == latency["pairs_sent"] > 0
    assert latency["alert_duplicates"] == 0
