"""The worker with many rules, and with sequences that wait for the watermark.

What an analyst checks: the alerts topic holds exactly what `seqwatch detect` finds in
the same records, every rule's alerts once, and a quiet stream still alerts.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from app.kafka.settings import KafkaSettings
from tests.helpers import ROOT, run_seqwatch
from tests.integration.harness import SAMPLE_TOPICS, Env, TopicReader, produce

SAMPLES = ROOT / "topics" / "samples"
THREE_STAGES = '''[rule]
rule_id = "seqwatch-test-three-stages"
name = "Start, file, connection"
type = "eql"
language = "eql"
query = """
sequence by host.id with maxspan=1m
  [process where event.type == "start"]
  [file where true]
  [network where not cidrmatch(destination.ip, "127.0.0.1")]
"""
'''


@pytest.fixture
def env(kafka: KafkaSettings, tmp_path: Path, unique: str) -> Env:
    return Env(kafka, tmp_path, unique)


def _detect(*args: str) -> list[tuple[str, str]]:
    result = run_seqwatch("detect", *args)
    assert result.returncode == 0, result.stderr.decode()
    alerts = [orjson.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return sorted((a["rule"]["rule_id"], a["alert"]["id"]) for a in alerts)


def _found(reader: TopicReader) -> list[tuple[str, str]]:
    return sorted((a["rule"]["rule_id"], a["alert"]["id"]) for a in reader.values())


def test_bundled_and_elastic_windows_rules_in_one_worker_equal_detect(
    env: Env, windows_rules: Path
) -> None:
    rules = ("--rules", str(ROOT / "app" / "rules"), "--rules", str(windows_rules))
    files = [SAMPLES / f"{name}.ndjson" for name in SAMPLE_TOPICS]
    expected = _detect(*rules, *map(str, files))
    assert len({rule_id for rule_id, _ in expected}) >= 5, "several rules alert on the samples"
    worker = env.worker(*rules).start()
    try:
        worker.wait_ready()
        for name, path in zip(SAMPLE_TOPICS, files, strict=True):
            produce(env.kafka, env.inputs[name], path.read_bytes().splitlines())
        reader = TopicReader(env.kafka, env.alerts)
        reader.wait_for(lambda recs: len(recs) >= len(expected), alive=worker.check_alive)
        reader.poll(3.0)
        assert _found(reader) == expected
        # Each rule's alerts in its own counter, event rules' (sent by the ingest
        # process) as sequences' (sent by the state stage).
        names = {a["rule"]["rule_id"]: a["rule"]["name"] for a in reader.values()}
        counts = Counter(rule_id for rule_id, _ in expected)
        metrics = worker.metrics_text()
        for rule_id, count in counts.items():
            line = f'seqwatch_rule_alerts_total{{rule="{names[rule_id]}",rule_id="{rule_id}"}}'
            assert f"{line} {float(count)}" in metrics, line
        assert "not loaded" in worker.log_text()  # the duplicate rule_id in app/rules
    finally:
        worker.stop()


def _three_stage_docs(hosts: int, seed: int) -> list[dict]:
    """Per host: a start, a file event, a connection (some to loopback); shuffled within
    a few seconds of event time, like a shipper's batches."""
    rnd = random.Random(seed)
    base = int(time.time() * 1000) - 120_000
    docs = []
    for h in range(hosts):
        t = base + h * 10
        external = h % 3 != 0
        for dt, category, ip in (
            (0, "process", None),
            (1_000, "file", None),
            (2_000, "network", "10.0.0.5" if external else "127.0.0.1"),
        ):
            doc = {
                "@timestamp": _iso(t + dt),
                "event": {"category": [category], "type": ["start"]},
                "host": {"id": f"host-{seed}-{h}"},
            }
            if ip:
                doc["destination"] = {"ip": ip}
            docs.append(doc)
    docs.sort(key=lambda d: d["@timestamp"] + str(rnd.random() * 3))
    return docs


def _iso(ms: int) -> str:
    from app.engine.timestamps import format_timestamp_ms

    return format_timestamp_ms(ms)


def test_an_ordered_sequence_alerts_as_detect_and_a_quiet_stream_alerts(
    env: Env, tmp_path: Path
) -> None:
    rule = tmp_path / "three.toml"
    rule.write_text(THREE_STAGES)
    docs = _three_stage_docs(60, seed=1)
    recording = tmp_path / "recording.ndjson"
    recording.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    expected = _detect("--rule", str(rule), "--lateness", "5s", str(recording))
    assert len(expected) == 40  # 60 hosts, a third connect to loopback only
    worker = env.worker("--rule", str(rule), "--lateness", "5s").start()
    try:
        worker.wait_ready()
        produce(env.kafka, env.inputs["winlogbeat"], [orjson.dumps(d) for d in docs])
        # Nothing follows these events: only the ingest stage's ticks release them.
        started = time.monotonic()
        reader = TopicReader(env.kafka, env.alerts)
        reader.wait_for(lambda recs: len(recs) >= 40, timeout=90, alive=worker.check_alive)
        waited = time.monotonic() - started
        reader.poll(3.0)
        assert _found(reader) == expected
        alert = reader.values()[0]
        assert [e["stage"] for e in alert["events"]] == [1, 2, 3]
        assert waited < 5 + 5 + 30, "released within lateness + tick + start-up"
    finally:
        worker.stop()
