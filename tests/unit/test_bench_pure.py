"""Pure parts of the bench: names, metrics parsing, the latency schedule and pairs, blocks."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from app.engine import Engine, Event, MemoryState, Source, load_rule
from app.kafka.settings import KafkaSettings
from app.worker.ingest import FETCH
from devtools import harness
from devtools.bench import baseline, engine_run, ingest_decode, latency, load
from devtools.synth import SHAPES, Record, generate


def test_names_share_one_prefix() -> None:
    names = load.BenchNames("abc123")
    every = [
        *names.inputs().values(),
        *names.inputs("lat").values(),
        names.alerts("w1"),
        names.deadletter(),
        names.warmup(),
        names.group("w1"),
    ]
    assert all(n.startswith("bench-abc123-") for n in every)
    assert len(set(every)) == len(every)
    assert set(names.inputs()) == set(load.SHIPPER_TOPICS)
    assert load.new_run_id() != load.new_run_id()


def test_parse_metrics_sums_labels_and_strips_total() -> None:
    text = """\
# HELP seqwatch_events_in_total Records read
# TYPE seqwatch_events_in_total counter
seqwatch_events_in_total{topic="a"} 10.0
seqwatch_events_in_total{topic="b"} 5.0
seqwatch_events_in_created{topic="a"} 1.7e9
seqwatch_forwarded_total 3.0
seqwatch_detection_latency_seconds_bucket{le="0.5"} 2.0
seqwatch_detection_latency_seconds_count 2.0
seqwatch_state_entries 7.0 1700000000000
"""
    out = harness.parse_metrics(text)
    assert out["seqwatch_events_in"] == 15.0
    assert out["seqwatch_forwarded"] == 3.0
    assert out["seqwatch_detection_latency_seconds_count"] == 2.0
    assert out["seqwatch_state_entries"] == 7.0
    assert not any(k.endswith("_created") for k in out)


def test_free_port_avoids_the_reserved_range() -> None:
    low, _high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for _ in range(20):
        port = harness.free_port()
        assert port not in harness.RESERVED_PORTS
        assert port < low, "a web port in the ephemeral range can be taken by any client"


def test_worker_env_drops_stray_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.kafka.settings import KafkaSettings

    monkeypatch.setenv("SEQWATCH_INPUT_PATTERN", "^prod-.*")
    env = harness.worker_env(KafkaSettings(bootstrap="h:1"))
    assert "SEQWATCH_INPUT_PATTERN" not in env
    assert env["SEQWATCH_BOOTSTRAP"] == "h:1"


def test_plan_keeps_the_total_rate_and_pairs_ordered() -> None:
    sched = latency.plan(10, 5000, 20, random.Random(1))
    assert len(sched) == pytest.approx(50_000, abs=2)
    assert [s[0] for s in sched] == sorted(s[0] for s in sched)
    starts = {i: t for t, kind, i in sched if kind == latency.START}
    nets = {i: t for t, kind, i in sched if kind == latency.NETWORK}
    assert len(starts) == len(nets) == 200
    lo, hi = latency.PAIR_NET_DELAY_S
    assert all(lo <= nets[i] - starts[i] <= hi for i in starts)
    assert max(t for t, _, _ in sched) < 10.2


def test_pairs_alert_once_each_in_every_shape() -> None:
    """The latency phase's pairs must be what the rule alerts on, whatever the shape."""
    factory = latency.PairFactory(seed=7)
    assert {h.shape for h in factory.hosts} == set(SHAPES)
    engine = Engine(load_rule(None), alert_cap=0, clock=lambda: 1_900_000_000.0)  # pairs of 2027
    state = MemoryState()
    alerted: set[str] = set()
    entities: set[str] = set()
    us = 1_800_000_000_000_000
    for k in range(2 * len(factory.hosts)):
        records = [factory.start(k, us), factory.network(k, us + 50_000)]
        us += 1_000_000
        for i, (topic, value, entity) in enumerate(records):
            assert orjson.loads(value)
            entities.add(entity)
            decoded = engine.decode(value, Source(topic, 0, 2 * k + i))
            assert type(decoded) is Event, (topic, value)
            for alert in engine.process(decoded, state):
                alerted.add(alert["process"]["entity_id"])
    assert alerted == entities
    assert len(entities) == 2 * len(factory.hosts)


def test_blocks_hold_every_record_once() -> None:
    records = [Record("t", b'{"i":%d}' % i, 0) for i in range(1000)]
    out = engine_run.blocks(records, size=100)
    assert all(b.endswith(b"\n") for b in out)
    assert b"".join(out).splitlines() == [r.value for r in records]


def test_engine_row_finds_the_expected_alerts() -> None:
    scenario = generate(20_000, seed=3, disorder_ms=5000)
    run = engine_run.run_engine(engine_run.blocks(scenario.records))
    assert run.events == len(scenario.records)
    assert run.alert_ids == run.alerts == scenario.expected_alerts


def test_ingest_decode_rows_keep_the_same_records() -> None:
    scenario = generate(12_000, seed=3, disorder_ms=5000)
    batched = ingest_decode.run_decode(scenario.records, batched=True)
    one_by_one = ingest_decode.run_decode(scenario.records, batched=False)
    assert batched.kept == one_by_one.kept > 0


def test_latency_reports_the_first_seconds_apart_from_the_settled_rate() -> None:
    run = latency.LatencyRun(pairs_sent=4)
    run.samples = [(0.5, 2_000.0, 1_900.0), (1.9, 900.0, None), (2.0, 150.0, 60.0)]
    run.samples.append((10.0, 250.0, 90.0))
    run.latencies_ms = [ms for _, ms, _ in run.samples]
    out = latency.describe(run)
    assert out["max_ms"] == 2_000.0 and out["p99_ms"] > 1_900  # every alert counts there
    assert out["first_seconds_max_ms"] == 2_000.0
    assert 150.0 <= out["settled_p50_ms"] <= out["settled_p99_ms"] <= 250.0


def test_the_baseline_consumer_fetches_as_the_ingest_consumer_does() -> None:
    """The ratio compares work, not configuration: the baseline's fetch settings are the
    worker's (they once drifted: 8 MiB partition fetches against the worker's 256 KiB)."""
    settings = KafkaSettings(bootstrap="127.0.0.1:1")
    config = baseline.consumer_config(settings)
    assert {k: config[k] for k in FETCH} == FETCH
    large = baseline.consumer_config(settings, baseline.LARGE_FETCH)
    assert large["max.partition.fetch.bytes"] == 8_388_608
    assert large["max.partition.fetch.bytes"] != FETCH["max.partition.fetch.bytes"]
