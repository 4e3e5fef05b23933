"""`seqwatch replay`, `record` and `alerts` against the real broker."""

from __future__ import annotations

from pathlib import Path

import orjson

from app.kafka.settings import KafkaSettings
from devtools.synth import fixed as events
from tests.helpers import ROOT, run_seqwatch
from tests.integration.harness import TopicReader, produce

SAMPLE = ROOT / "topics" / "samples" / "logs-endpoint.events.network.ndjson"


def test_replay_then_record_round_trips_every_line(
    kafka: KafkaSettings, tmp_path: Path, unique: str
) -> None:
    topic = f"replayed-{unique}"
    env = {"SEQWATCH_BOOTSTRAP": kafka.bootstrap}
    replayed = run_seqwatch(
        "replay",
        str(SAMPLE),
        "--topic",
        topic,
        "--partitions",
        "1",
        "--compression",
        "zstd",
        env=env,
    )
    assert replayed.returncode == 0, replayed.stderr.decode()
    lines = [line for line in SAMPLE.read_bytes().splitlines() if line.strip()]
    assert f"replayed {len(lines)} records".encode() in replayed.stderr
    out = tmp_path / "recorded.ndjson"
    recorded = run_seqwatch(
        "record", "--topic", topic, "--out", str(out), "--timeout", "2", env=env
    )
    assert recorded.returncode == 0, recorded.stderr.decode()
    assert out.read_bytes().splitlines() == lines, "one partition keeps the order"


def test_replay_speed_follows_recorded_time(
    kafka: KafkaSettings, tmp_path: Path, unique: str
) -> None:
    e = events.entity(1, "spd")
    path = tmp_path / "paced.ndjson"
    topic = f"paced-{unique}"
    # Three records one second apart, replayed ten times faster: 0.2 s from first to last.
    path.write_bytes(b"\n".join(events.start(e, i * 1_000) for i in range(3)) + b"\n")
    result = run_seqwatch(
        "replay",
        str(path),
        "--topic",
        topic,
        "--partitions",
        "1",
        "--speed",
        "10",
        "-q",
        env={"SEQWATCH_BOOTSTRAP": kafka.bootstrap},
    )
    assert result.returncode == 0, result.stderr.decode()
    reader = TopicReader(kafka, topic)
    reader.wait_for(lambda recs: len(recs) >= 3)
    stamps = [m.timestamp()[1] for m in reader.records]
    assert 180 <= stamps[-1] - stamps[0] <= 1_000, stamps


def test_alerts_prints_each_committed_alert_as_one_json_line(
    kafka: KafkaSettings, unique: str
) -> None:
    topic = f"printed-{unique}"
    docs = [{"alert": {"id": f"a{i}"}, "process": {"entity_id": f"e{i}"}} for i in range(3)]
    produce(kafka, topic, [orjson.dumps(d) for d in docs])
    env = {"SEQWATCH_BOOTSTRAP": kafka.bootstrap}
    result = run_seqwatch("alerts", "--topic", topic, "--timeout", "2", env=env)
    assert result.returncode == 0, result.stderr.decode()
    printed = sorted(orjson.loads(line)["alert"]["id"] for line in result.stdout.splitlines())
    assert printed == ["a0", "a1", "a2"]
    missing = run_seqwatch("alerts", "--topic", f"nope-{unique}", "--timeout", "1", env=env)
    assert missing.returncode == 2
    assert missing.stderr.decode().strip() == (
        f"seqwatch: topic 'nope-{unique}' does not exist on {kafka.bootstrap}"
    )


def test_coverage_reads_a_recording_made_by_seqwatch_record(
    kafka: KafkaSettings, tmp_path: Path, unique: str
) -> None:
    """The samples replayed into a topic and recorded back: `seqwatch coverage` on the
    recording reports what it reports on the files."""
    topic = f"covered-{unique}"
    env = {"SEQWATCH_BOOTSTRAP": kafka.bootstrap}
    samples = sorted(str(p) for p in (ROOT / "topics" / "samples").glob("*.ndjson"))
    for sample in samples:
        replayed = run_seqwatch("replay", sample, "--topic", topic, "--partitions", "1", env=env)
        assert replayed.returncode == 0, replayed.stderr.decode()
    out = tmp_path / "recorded.ndjson"
    recorded = run_seqwatch(
        "record", "--topic", topic, "--out", str(out), "--timeout", "2", env=env
    )
    assert recorded.returncode == 0, recorded.stderr.decode()

    def report(*files: str) -> dict[str, object]:
        proc = run_seqwatch("coverage", *files, "--json", env=env)
        assert proc.returncode == 0, proc.stderr.decode()
        return orjson.loads(proc.stdout.splitlines()[-1])

    from_topic, from_files = report(str(out)), report(*samples)
    assert from_topic == from_files
    assert from_topic["both"] == 4 and from_topic["missed"] == []
