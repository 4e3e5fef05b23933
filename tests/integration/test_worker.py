"""The worker against the real broker: alerts, out-of-order topics, bad input, restarts."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from app.kafka.settings import KafkaSettings
from devtools.synth import fixed as events
from tests.helpers import ROOT, run_seqwatch
from tests.integration.harness import (
    SAMPLE_TOPICS,
    Env,
    TopicReader,
    WorkerProcess,
    alert_id,
    produce,
)

SAMPLES = ROOT / "topics" / "samples"


@pytest.fixture
def env(kafka: KafkaSettings, tmp_path: Path, unique: str) -> Env:
    return Env(kafka, tmp_path, unique)


@pytest.fixture
def running(env: Env) -> Iterator[WorkerProcess]:
    worker = env.worker().start()
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def _detect_ids(*files: Path) -> list[str]:
    result = run_seqwatch("detect", *map(str, files))
    assert result.returncode == 0, result.stderr.decode()
    return [alert_id(orjson.loads(line)) for line in result.stdout.splitlines() if line.strip()]


def test_samples_through_worker_equal_detect(env: Env, running: WorkerProcess) -> None:
    files = [SAMPLES / f"{name}.ndjson" for name in SAMPLE_TOPICS]
    expected = _detect_ids(*files)
    assert expected, "the bundled samples contain alerting sequences"
    for name, path in zip(SAMPLE_TOPICS, files, strict=True):
        produce(env.kafka, env.inputs[name], path.read_bytes().splitlines())
    reader = TopicReader(env.kafka, env.alerts)
    reader.wait_for(lambda recs: len(recs) >= len(expected), alive=running.check_alive)
    reader.poll(3.0)  # anything extra would show a disagreement
    got = [alert_id(a) for a in reader.values()]
    assert sorted(got) == sorted(expected)


def test_network_topic_replayed_before_process_topic_alerts_once(
    env: Env, running: WorkerProcess
) -> None:
    ids = [events.entity(i, env.unique[:4]) for i in range(5)]
    network = [events.network(e, 1_000 + i) for i, e in enumerate(ids)]
    starts = [events.start(e, 500 + i) for i, e in enumerate(ids)]
    produce(env.kafka, env.inputs["logs-endpoint.events.network"], network)
    reader = TopicReader(env.kafka, env.alerts)
    reader.poll(2.0)
    assert reader.records == [], "no start yet, so no alert"
    produce(env.kafka, env.inputs["logs-endpoint.events.process"], starts)
    reader.wait_for(lambda recs: len(recs) >= len(ids), alive=running.check_alive)
    reader.poll(2.0)
    alerts = reader.values()
    assert sorted(_entity(a) for a in alerts) == sorted(ids)
    assert len({alert_id(a) for a in alerts}) == len(ids)


def test_malformed_records_are_deadlettered_and_the_worker_keeps_alerting(
    env: Env, running: WorkerProcess
) -> None:
    topic = env.inputs["winlogbeat"]
    bad = {
        b"this is not json": "not_json",
        b"[1, 2, 3]": "not_object",
        events.start(events.entity(9, "tsbd"), 0).replace(
            b"2026-11-28T09:00:00.000Z", b"yesterday"
        ): ("bad_timestamp"),
        b'{"@timestamp": "2026-11-28T09:00:00Z", "msg": "\xff\xfe bad utf-8"}': "not_utf8",
        b'{"@timestamp": "2026-11-28T09:00:00Z", "pad": "' + b"x" * 1_100_000 + b'"}': "too_large",
    }
    produce(env.kafka, topic, list(bad))
    good = events.entity(1, "good")
    produce(env.kafka, topic, [events.start(good, 0), events.network(good, 250)])

    dead = TopicReader(env.kafka, env.deadletter)
    dead.wait_for(lambda recs: len(recs) >= len(bad), alive=running.check_alive)
    by_value = {m.value(): dict(m.headers()) for m in dead.records}
    for value, reason in bad.items():
        headers = by_value[value]
        assert headers["seqwatch.reason"].decode() == reason
        assert headers["seqwatch.source.topic"].decode() == topic
        assert int(headers["seqwatch.source.offset"]) >= 0
        assert headers["seqwatch.detail"]

    alerts = TopicReader(env.kafka, env.alerts)
    alerts.wait_for(lambda recs: len(recs) >= 1, alive=running.check_alive)
    assert [_entity(a) for a in alerts.values()] == [good]
    running.check_alive()
    metrics = running.metrics_text()
    assert 'seqwatch_rejects_total{reason="not_json"} 1.0' in metrics
    assert "seqwatch_deadlettered_total 5.0" in metrics


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_every_shipper_codec_is_read(
    kafka: KafkaSettings, tmp_path: Path, unique: str, codec: str
) -> None:
    env = Env(kafka, tmp_path, unique)
    ids = [events.entity(i, codec) for i in range(3)]
    records = [r for i, e in enumerate(ids) for r in (events.start(e, i), events.network(e, i + 9))]
    produce(kafka, env.inputs["winlogbeat"], records, compression=codec)
    worker = env.worker().start()
    try:
        worker.wait_ready()
        reader = TopicReader(kafka, env.alerts)
        reader.wait_for(lambda recs: len(recs) >= len(ids), alive=worker.check_alive)
        assert sorted(_entity(a) for a in reader.values()) == sorted(ids)
    finally:
        worker.stop()


def test_sigterm_and_restart_mid_replay_loses_and_duplicates_nothing(env: Env) -> None:
    ids = [events.entity(i, "rst") for i in range(40)]
    first, second = ids[:20], ids[20:]
    process_topic = env.inputs["logs-endpoint.events.process"]
    network_topic = env.inputs["logs-endpoint.events.network"]
    worker = env.worker().start()
    reader = TopicReader(env.kafka, env.alerts)
    try:
        worker.wait_ready()
        # Starts of every process are pending when the worker stops; half have connected.
        produce(env.kafka, process_topic, [events.start(e, i * 10) for i, e in enumerate(ids)])
        produce(
            env.kafka, network_topic, [events.network(e, i * 10 + 5) for i, e in enumerate(first)]
        )
        reader.wait_for(lambda recs: len(recs) >= len(first), alive=worker.check_alive)
        assert worker.stop(signal.SIGTERM) == 0
    finally:
        worker.stop()
    produce(
        env.kafka,
        network_topic,
        [events.network(e, (i + 20) * 10 + 5) for i, e in enumerate(second)],
    )
    restarted = env.worker().start()
    try:
        restarted.wait_ready()
        reader.wait_for(lambda recs: len(recs) >= len(ids), alive=restarted.check_alive)
        reader.poll(3.0)
    finally:
        restarted.stop()
    alerts = reader.values()
    assert sorted(_entity(a) for a in alerts) == sorted(ids), "pending starts survived the restart"
    assert len(alerts) == len({alert_id(a) for a in alerts}) == len(ids), "nothing duplicated"


def test_alert_document_matches_the_contract(env: Env, running: WorkerProcess) -> None:
    e = events.entity(7, "doc")
    start, net = events.start(e, 1_000), events.network(e, 1_500, ip="198.51.100.23", port=8443)
    produce(env.kafka, env.inputs["winlogbeat"], [start, net])
    reader = TopicReader(env.kafka, env.alerts)
    reader.wait_for(lambda recs: len(recs) >= 1, alive=running.check_alive)
    message = reader.records[0]
    assert message.key() == e.encode(), "alerts are keyed by process.entity_id"
    from app.alerts_view import field

    alert = orjson.loads(message.value())
    assert field(alert, "event.kind") == "alert"
    assert field(alert, "@timestamp") and field(alert, "event.created")
    assert field(alert, "rule.id") == "0e79980b-4250-4a50-a509-69294c14e84b"
    assert field(alert, "rule.name") == "MsBuild Making Network Connections"
    assert field(alert, "rule.severity") == "medium"
    assert field(alert, "rule.risk_score") == 47
    assert str(field(alert, "rule.version")) == "5"
    assert "sequence by process.entity_id" in field(alert, "rule.query")
    threat = field(alert, "rule.threat")
    assert "TA0002" in orjson.dumps(threat).decode() and "T1127" in orjson.dumps(threat).decode()
    assert field(alert, "process.entity_id") == e
    assert field(alert, "process.name") == "MSBuild.exe"
    assert field(alert, "host.name") == "WS-FIN-01"
    assert field(alert, "destination.ip") == "198.51.100.23"
    assert field(alert, "destination.port") == 8443
    stages = field(alert, "events")
    assert len(stages) == 2
    assert [s["topic"] for s in stages] == [env.inputs["winlogbeat"]] * 2
    assert all(isinstance(s["partition"], int) and isinstance(s["offset"], int) for s in stages)
    assert field(alert, "kibana.alert.rule.name") == "MsBuild Making Network Connections"
    assert field(alert, "kibana.alert.severity") == "medium"
    assert field(alert, "kibana.alert.risk_score") == 47
    assert field(alert, "kibana.alert.original_time")
    assert field(alert, "kibana.alert.uuid") == alert_id(alert)


def test_worker_started_before_its_topics_exist_creates_them(env: Env) -> None:
    worker = env.worker().start()
    try:
        worker.wait_ready()
        e = events.entity(3, "late")
        produce(env.kafka, env.inputs["winlogbeat"], [events.start(e, 0), events.network(e, 5)])
        reader = TopicReader(env.kafka, env.alerts)
        reader.wait_for(lambda recs: len(recs) >= 1, alive=worker.check_alive)
    finally:
        worker.stop()


def test_bad_settings_are_one_line_each_and_nothing_starts(tmp_path: Path) -> None:
    result = run_seqwatch(
        "worker",
        "--partitions",
        "0",
        "--alerts-topic",
        "bad topic!",
        "--ttl",
        "soon",
        "--data-dir",
        str(tmp_path),
    )
    assert result.returncode == 2
    assert b"Traceback" not in result.stderr
    assert result.stderr.decode().startswith("seqwatch: invalid --ttl 'soon'")
    rule = tmp_path / "bad.toml"
    rule.write_text('[rule]\nquery = "sequence by x [process where foo(bar)]"\n')
    result = run_seqwatch("worker", "--rule", str(rule), "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert b"Traceback" not in result.stderr
    assert len(result.stderr.decode().strip().splitlines()) == 1


def _entity(alert: dict[str, object]) -> str:
    from app.alerts_view import field

    return str(field(alert, "process.entity_id"))


def test_demo_runs_end_to_end(kafka: KafkaSettings) -> None:
    """`make demo`'s command on the session broker (which it must leave running)."""
    port = kafka.bootstrap.rsplit(":", 1)[1]
    result = run_seqwatch("demo", "--port", port, "--json", timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    alerts = [orjson.loads(line) for line in result.stdout.splitlines() if line.strip()]
    files = [SAMPLES / f"{name}.ndjson" for name in SAMPLE_TOPICS]
    assert sorted(alert_id(a) for a in alerts) == sorted(_detect_ids(*files))
    assert b"done" in result.stderr


def test_state_stays_flat_with_a_short_ttl_and_restores_without_expired_keys(env: Env) -> None:
    """Starts that never connect must not pile up: expiry deletes them, in the changelog too."""

    def state_entries(worker: WorkerProcess) -> float:
        return worker.metric("seqwatch_state_entries")

    def sequenced(worker: WorkerProcess) -> float:
        return worker.metric("seqwatch_sequenced_total")

    n = 3000  # one start every 600 ms of event time: 30 minutes, TTL 10 s
    ids = [events.entity(i, "ttl") for i in range(n)]
    starts = [events.start(e, i * 600) for i, e in enumerate(ids)]
    worker = env.worker("--ttl", "10s", "--lateness", "1s").start()
    try:
        worker.wait_ready()
        # Keyed, so every input partition carries the whole span of event time (the
        # watermark of a state partition is the minimum over the inputs feeding it).
        produce(env.kafka, env.inputs["winlogbeat"], starts, keys=[e.encode() for e in ids])
        deadline = time.monotonic() + 120
        while sequenced(worker) < n and time.monotonic() < deadline:
            worker.check_alive()
            time.sleep(0.2)
        assert sequenced(worker) == n
        # The live window is about 11 s / 600 ms of starts, plus index keys.
        live = state_entries(worker)
        assert live <= 200, f"{live} state entries for {n} starts with a 10 s TTL"
        assert worker.metric("seqwatch_expired_total") >= n - 200
    finally:
        worker.stop()
    # A new worker restoring from the changelog alone holds no more than the live window.
    env.tmp = env.tmp / "fresh"
    env.tmp.mkdir()
    restored = env.worker("--ttl", "10s", "--lateness", "1s").start()
    try:
        restored.wait_ready()
        assert state_entries(restored) <= 200
    finally:
        restored.stop()


def test_an_event_rule_alerts_from_the_ingest_stage_exactly_once(env: Env) -> None:
    """A single-event rule needs no state: its alerts leave with the input offsets."""
    rule = env.tmp / "event_rule.toml"
    rule.write_text(
        '[rule]\nrule_id = "event-msbuild"\nname = "MSBuild started"\nseverity = "low"\n'
        'risk_score = 21\ntype = "eql"\nlanguage = "eql"\nquery = """\n'
        'process where event.type == "start" and process.name : "msbuild.exe"\n"""\n'
    )
    ids = [events.entity(i, "evnt") for i in range(30)]
    noise = [events.network(events.entity(i, "nois"), i) for i in range(100)]
    worker = env.worker("--rule", str(rule), "--alert-cap", "0").start()
    reader = TopicReader(env.kafka, env.alerts)
    try:
        worker.wait_ready()
        produce(
            env.kafka, env.inputs["winlogbeat"], [events.start(e, i) for i, e in enumerate(ids)]
        )
        produce(env.kafka, env.inputs["winlogbeat"], noise)
        reader.wait_for(lambda recs: len(recs) >= len(ids), alive=worker.check_alive)
        reader.poll(3.0)
        alerts = reader.values()
        assert sorted(_entity(a) for a in alerts) == sorted(ids)
        assert len({alert_id(a) for a in alerts}) == len(ids)
        assert {a["rule"]["name"] for a in alerts} == {"MSBuild started"}
        assert all(len(a["events"]) == 1 for a in alerts)
        assert worker.metric("seqwatch_alerts_total") == len(ids)
        assert worker.metric("seqwatch_forwarded_total") == 0, "nothing for the state stage"
    finally:
        worker.stop()
