"""The state stage under ordinary and hostile traffic: no alert lost, every failure loud.

What a user would look at: the alerts topic (read_committed), the dead-letter topic, the
changelog's values, /metrics, /healthz and the worker's log.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from app.engine import Engine, load_rule
from app.kafka import admin as kadmin
from app.kafka.io import producer_config, replay
from app.kafka.settings import KafkaSettings
from devtools.synth import fixed as events
from tests.integration.harness import (
    Env,
    TopicReader,
    WorkerProcess,
    alert_id,
    changelog_values,
    produce,
)

LOG_ERRORS = ("Traceback", "MessageSizeTooLarge", "OutOfOrderSequence", "cannot continue")


def _entities(reader: TopicReader) -> Counter[str]:
    from app.alerts_view import field

    return Counter(str(field(a, "process.entity_id")) for a in reader.values())


def _exactly_once(reader: TopicReader, expected: set[str], worker: WorkerProcess) -> None:
    reader.wait_for(lambda recs: len(recs) >= len(expected), timeout=180, alive=worker.check_alive)
    reader.poll(3.0)  # anything extra would show here
    counts = _entities(reader)
    assert set(counts) == expected, (
        f"lost {len(expected - set(counts))}, extra {sorted(set(counts) - expected)[:5]}"
    )
    doubled = {e: n for e, n in counts.items() if n > 1}
    assert not doubled, f"alerted twice: {list(doubled)[:5]}"
    assert len({alert_id(a) for a in reader.values()}) == len(expected)


def _clean_log(worker: WorkerProcess) -> None:
    text = worker.log_text()
    found = [e for e in LOG_ERRORS if e in text]
    assert not found, f"{found} in the log\n{worker.log_tail()}"
    assert worker.metric("seqwatch_worker_restarts_total") == 0
    assert worker.metric("seqwatch_failing") == 0


def _pairs(ids: list[str], base: int = 0) -> list[bytes]:
    """A start and, 9 ms later, a connection for each process."""
    return [
        r
        for i, e in enumerate(ids)
        for r in (events.start(e, base + i), events.network(e, base + i + 9))
    ]


def _unhealthy(
    worker: WorkerProcess, status: str, until: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    """The /healthz body once it answers 503 with `status` and `until(body)` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.check_alive()  # the supervisor lives on; its child is what may restart
        response = worker.health_response()
        if (
            response
            and response[0] == 503
            and response[1]["status"] == status
            and until(response[1])
        ):
            return response[1]
        time.sleep(0.2)
    raise AssertionError(f"no {status} report in {timeout} s\n{worker.log_tail()}")


def _caught_up(worker: WorkerProcess, records: int, timeout: float = 120) -> None:
    """Until the worker has read `records` and sequenced every event it forwarded."""
    deadline = time.monotonic() + timeout
    while True:
        read = worker.metric("seqwatch_events_in_total", default=0)
        forwarded = worker.metric("seqwatch_forwarded_total")
        if read >= records and worker.metric("seqwatch_sequenced_total") >= forwarded:
            return
        assert time.monotonic() < deadline, f"read {read} of {records}"
        worker.check_alive()
        time.sleep(0.2)


def test_a_build_farm_alerts_every_process_once_in_bounded_state(env: Env) -> None:
    """20 MSBuild processes making 3,000 connections each over 4 minutes (a NuGet restore
    on every build machine) among 400 ordinary pairs, at 5,000 events/s."""
    farm = [events.entity(i, "farm") for i in range(20)]
    pairs = [events.entity(i, "pair") for i in range(400)]
    timed: list[tuple[int, bytes]] = []
    for i, e in enumerate(farm):
        timed.append((i * 100, events.start(e, i * 100)))
        for j in range(3_000):
            at = i * 100 + 50 + j * 80
            ip = f"10.{i}.{j // 250}.{j % 250}"
            timed.append((at, events.network(e, at, ip=ip, port=443 + j % 3)))
    for i, e in enumerate(pairs):
        timed.append((i * 600, events.start(e, i * 600, host=f"WS-{i:03d}")))
        timed.append((i * 600 + 500, events.network(e, i * 600 + 500, host=f"WS-{i:03d}")))
    timed.sort(key=lambda item: item[0])
    worker = env.worker("--alert-cap", "0").start()
    try:
        worker.wait_ready()
        reader = TopicReader(env.kafka, env.alerts)
        topic = env.inputs["winlogbeat"]
        sent = replay(env.kafka, ((topic, raw) for _, raw in timed), rate=5_000)
        assert sent.failed == 0 and sent.produced == len(timed)
        _exactly_once(reader, set(farm) | set(pairs), worker)
        _caught_up(worker, len(timed))
        _clean_log(worker)
        # Every connection of a build process but the one that completed its sequence was
        # dropped: after the sequence (collapsed) or, read before its start, past the
        # held bound (trimmed). None of them stayed in state.
        collapsed = worker.metric("seqwatch_collapsed_total")
        trimmed = worker.metric('seqwatch_trimmed_total{kind="held_event"}', default=0)
        assert collapsed + trimmed == 20 * 2_999, (collapsed, trimmed)
        health = worker.health_response()
        assert health is not None and health[0] == 200 and health[1]["status"] == "ok"
    finally:
        worker.stop()
    count, largest = changelog_values(env.kafka, env.group)
    bound = Engine(load_rule()).max_state_bytes
    print(f"build farm: {count} changelog values, largest {largest} bytes (bound {bound})")
    assert count > 0 and largest <= bound


def _hostile_records(now_ms: int) -> list[tuple[bytes | None, str]]:
    """(record, what a user should see): a dead-letter reason, or 'skipped'/'stored'."""

    def doc(entity: object, kind: str = "start", **extra: object) -> dict[str, object]:
        raw = events.start("x", 0) if kind == "start" else events.network("x", 0)
        base = orjson.loads(raw)
        base["process"]["entity_id"] = entity
        base.update(extra)
        return base

    cut = events.start(events.entity(1, "hcut"), 0)
    deep = b'{"a":' + b"[" * 200_000 + b'"MSBuild.exe"' + b"]" * 200_000 + b"}"
    future = datetime.fromtimestamp(now_ms / 1000 + 2 * 86_400, UTC).isoformat()
    big_command = doc("{hostile-cmd}")
    big_command["process"]["command_line"] = "MSBuild.exe " + "A" * 500_000
    cases: list[tuple[bytes | None, str]] = [
        (b'{"process":{"name":"MSBuild.exe\xff"}}', "not_utf8"),
        (b'["MSBuild.exe", "start"]', "not_object"),
        (cut[: len(cut) // 2], "not_json"),
        (b'{"process":{"name":"MSBuild.exe","entity_id":"{h-nan}"},"x":NaN}', "not_json"),
        (deep, "not_json"),
        (orjson.dumps(doc("{hostile-time}", **{"@timestamp": "yesterday"})), "bad_timestamp"),
        (orjson.dumps(doc("{hostile-future}", **{"@timestamp": future})), "future_timestamp"),
        (orjson.dumps(doc({"guid": "{x}"})), "skipped"),  # object-valued key: none
        (orjson.dumps(doc("{" + "k" * 200_000 + "}")), "skipped"),  # longer than indexed
        (orjson.dumps(doc("{nul\u0000key}")), "stored"),
        (orjson.dumps(doc("")), "stored"),
        (orjson.dumps(doc("\u0001" * 1_000, kind="network")), "stored"),
        (b'{"process":{"name":"MSBuild.exe","entity_id":"\\ud800"}}', "not_json"),
        (b"12345", "not_object"),
        (b"null", "not_object"),
        (b"", "empty"),
        (b"   ", "empty"),
        (None, "empty"),
        (orjson.dumps(big_command), "stored"),
        (orjson.dumps(doc("{hostile-big}", pad="p" * 900_000)), "stored"),
        (orjson.dumps(doc("{hostile-huge}", pad="p" * 1_100_000)), "too_large"),
        (orjson.dumps(doc("{hostile-names}") | {"names": ["MSBuild.exe"] * 60_000}), "stored"),
        (orjson.dumps(doc("{hostile-cat}", event={"category": {"x": 1}, "type": 5})), "dropped"),
    ]
    return cases * 5  # 115 records, and duplicates of each on the way


def test_hostile_records_among_real_pairs_silence_nothing(env: Env) -> None:
    rng = random.Random(10)
    real = [events.entity(i, "real") for i in range(1_990)]
    large = [events.entity(i, "larg") for i in range(10)]
    records: list[bytes | None] = []
    for i, e in enumerate(real):
        records += [events.start(e, i * 100), events.network(e, i * 100 + 250)]
    for i, e in enumerate(large):
        start = orjson.loads(events.start(e, 500 + i * 20_000))
        start["process"]["command_line"] = "MSBuild.exe " + "B" * 5_000
        start["pad"] = "p" * 300_000
        records += [orjson.dumps(start), events.network(e, 500 + i * 20_000 + 250)]
    hostile = _hostile_records(int(time.time() * 1000))
    for raw, _ in hostile:
        records.insert(rng.randrange(len(records) + 1), raw)
    worker = env.worker("--alert-cap", "0").start()
    try:
        worker.wait_ready()
        alerts = TopicReader(env.kafka, env.alerts)
        produce(env.kafka, env.inputs["winlogbeat"], records)  # type: ignore[arg-type]
        _exactly_once(alerts, set(real) | set(large), worker)
        reasons = Counter(r for _, r in hostile if r not in ("skipped", "stored", "dropped"))
        dead = TopicReader(env.kafka, env.deadletter)
        dead.wait_for(lambda recs: len(recs) >= sum(reasons.values()), alive=worker.check_alive)
        dead.poll(2.0)
        got = Counter(dict(m.headers())["seqwatch.reason"].decode() for m in dead.records)
        assert got == reasons
        for name, n in reasons.items():
            assert worker.metric(f'seqwatch_rejects_total{{reason="{name}"}}') == n
        assert worker.metric('seqwatch_skipped_total{reason="key_too_long"}') == 5
        assert worker.metric('seqwatch_skipped_total{reason="no_key"}') >= 5
        _clean_log(worker)
        for alert in alerts.values():
            if str(alert["process"]["entity_id"]) in large:
                first = alert["events"][0]
                assert first["original"] is None and first["original_omitted_bytes"] > 300_000
                assert first["fields"]["process.command_line"].startswith("MSBuild.exe BBB")
                assert first["fields_trimmed"] == ["process.command_line"]
    finally:
        worker.stop()


def _alter_max_message_bytes(kafka: KafkaSettings, topic: str, value: int) -> None:
    client, _ = kadmin.connect(kafka)
    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry(
                "max.message.bytes", str(value), incremental_operation=AlterConfigOpType.SET
            )
        ],
    )
    for future in client.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def test_a_refused_alert_commits_nothing_and_every_alert_arrives_once_fixed(env: Env) -> None:
    """An alerts topic that refuses every alert (max.message.bytes 2,000): the worker
    stops without committing, says why, restarts with backoff, and catches up once the
    topic takes alerts again."""
    client, _ = kadmin.connect(env.kafka)
    kadmin.create_topic(client, env.alerts, 4, 1, {"max.message.bytes": "2000"})
    ids = [events.entity(i, "rfsd") for i in range(30)]
    worker = env.worker("--alert-cap", "0").start()
    alerts = TopicReader(env.kafka, env.alerts)
    try:
        worker.wait_ready()
        assert "takes records of at most 2000 bytes" in worker.log_text(), "warned at start"
        produce(env.kafka, env.inputs["winlogbeat"], _pairs(ids))
        failing = _unhealthy(worker, "failing", lambda h: h["failure"]["count"] >= 2, 120)
        assert "MessageSizeTooLarge" in failing["failure"]["reason"]
        assert worker.metric("seqwatch_failing") == 1
        alerts.poll(2.0)
        assert alerts.records == [], "nothing of the failed batches became visible"
        log = worker.log_text()
        assert "worker cannot continue" in log and "worker failing (" in log

        _alter_max_message_bytes(env.kafka, env.alerts, 1_048_576)
        _exactly_once(alerts, set(ids), worker)
        deadline = time.monotonic() + 60
        while worker.metric("seqwatch_failing", default=1) != 0:
            assert time.monotonic() < deadline, "the failure was never cleared"
            time.sleep(0.2)
        health = worker.health_response()
        assert health is not None and health[0] == 200
    finally:
        worker.stop()


def test_a_refused_forward_stalls_the_ingest_loudly_until_fixed(env: Env) -> None:
    """A repartition topic that refuses every forwarded event: the ingest stage aborts,
    backs off and says why, commits none of its input offsets, and catches up after."""
    client, _ = kadmin.connect(env.kafka)
    repartition = f"{env.group}-events-by-entity"
    kadmin.create_topic(client, repartition, 4, 1, {"max.message.bytes": "300"})
    ids = [events.entity(i, "stll") for i in range(20)]
    worker = env.worker("--alert-cap", "0").start()
    alerts = TopicReader(env.kafka, env.alerts)
    try:
        worker.wait_ready()
        produce(env.kafka, env.inputs["winlogbeat"], _pairs(ids))
        stalled = _unhealthy(worker, "stalled", lambda h: True, 60)["stalled"]
        assert repartition in stalled["reason"]
        assert worker.metric('seqwatch_stalled{stage="ingest"}') == 1
        assert worker.metric("seqwatch_delivery_failures_total") >= 1
        assert "ingest stage stalled" in worker.log_text()
        alerts.poll(1.0)
        assert alerts.records == []
        group = kadmin.committed_offsets(client, f"{env.group}.ingest", env.inputs["winlogbeat"])
        assert not any(offset > 0 for offset in group.values()), "no input offset committed"

        _alter_max_message_bytes(env.kafka, repartition, 1_048_576)
        _exactly_once(alerts, set(ids), worker)
        assert worker.metric('seqwatch_stalled{stage="ingest"}') == 0
        assert "made progress again" in worker.log_text()
        # the aborted attempts counted nothing: each record read and forwarded once
        topic = env.inputs["winlogbeat"]
        assert worker.metric(f'seqwatch_events_in_total{{topic="{topic}"}}') == 2 * len(ids)
        assert worker.metric("seqwatch_forwarded_total") == 2 * len(ids)
        _clean_log(worker)
    finally:
        worker.stop()


def test_an_event_rules_alerts_survive_a_stalled_ingest_under_the_cap(env: Env) -> None:
    """An event rule's alerts leave from the ingest stage: a refused alert aborts the
    batch, and the redo must not count the aborted attempt against the alert cap."""
    rule = env.tmp / "event_rule.toml"
    rule.write_text(
        '[rule]\nrule_id = "event-stall"\nname = "MSBuild started"\nquery = """\n'
        'process where event.type == "start" and process.name : "msbuild.exe"\n"""\n'
    )
    client, _ = kadmin.connect(env.kafka)
    # The ingest compresses (lz4): a 4 KB alert fits in 2,000 bytes, not in 100.
    kadmin.create_topic(client, env.alerts, 4, 1, {"max.message.bytes": "100"})
    ids = [events.entity(i, "evst") for i in range(5)]
    worker = env.worker("--rule", str(rule), "--alert-cap", "5").start()
    alerts = TopicReader(env.kafka, env.alerts)
    try:
        worker.wait_ready()
        produce(
            env.kafka, env.inputs["winlogbeat"], [events.start(e, i) for i, e in enumerate(ids)]
        )
        stalled = _unhealthy(worker, "stalled", lambda h: h["stalled"]["attempts"] >= 2, 60)[
            "stalled"
        ]
        assert env.alerts in stalled["reason"]
        _alter_max_message_bytes(env.kafka, env.alerts, 1_048_576)
        _exactly_once(alerts, set(ids), worker)
        assert worker.metric("seqwatch_alerts_held_by_cap_total") == 0
        assert worker.metric("seqwatch_alerts_total") == len(ids)
    finally:
        worker.stop()


def test_poison_records_on_the_repartition_topic_are_deadlettered_once(env: Env) -> None:
    first = [events.entity(i, "psn1") for i in range(50)]
    second = [events.entity(i, "psn2") for i in range(50)]
    worker = env.worker("--alert-cap", "0").start()
    alerts = TopicReader(env.kafka, env.alerts)
    try:
        worker.wait_ready()
        topic = env.inputs["winlogbeat"]
        produce(env.kafka, topic, _pairs(first))
        alerts.wait_for(lambda recs: len(recs) >= len(first), alive=worker.check_alive)
        repartition = f"{env.group}-events-by-entity"
        producer = Producer({**producer_config(env.kafka), "partitioner": "murmur2_random"})
        poison: list[bytes | None] = [
            b"not a repartition record",
            orjson.dumps({"v": 99, "k": first[0], "t": 0}),
            orjson.dumps({"v": 1, "k": first[1], "t": "soon"}),
            None,
        ]
        for n, value in enumerate(poison):
            producer.produce(repartition, key=f"poison-{n}".encode(), value=value)
        assert producer.flush(30) == 0
        produce(env.kafka, topic, _pairs(second, 60_000))
        _exactly_once(alerts, set(first) | set(second), worker)
        dead = TopicReader(env.kafka, env.deadletter)
        dead.wait_for(lambda recs: len(recs) >= len(poison), alive=worker.check_alive)
        dead.poll(2.0)
        assert len(dead.records) == len(poison), "each poison record dead-lettered once"
        for message in dead.records:
            headers = dict(message.headers())
            assert headers["seqwatch.reason"] == b"repartition_format"
            assert headers["seqwatch.source.topic"].decode() == repartition
            assert int(headers["seqwatch.source.offset"]) >= 0
            assert headers["seqwatch.detail"]
        assert worker.metric('seqwatch_rejects_total{reason="repartition_format"}') == 4
        _clean_log(worker)
    finally:
        worker.stop()


@pytest.fixture
def env(kafka: KafkaSettings, tmp_path: Path, unique: str) -> Env:
    return Env(kafka, tmp_path, unique)
