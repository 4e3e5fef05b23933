"""`seqwatch topics apply`: creates what is missing, reports drift, never alters."""

from __future__ import annotations

from pathlib import Path

from app.kafka import admin as kadmin
from app.kafka.settings import KafkaSettings
from tests.helpers import run_seqwatch


def _spec(tmp_path: Path, unique: str, partitions: int = 3) -> Path:
    path = tmp_path / "topics.toml"
    path.write_text(
        f"""
[defaults]
replication_factor = 1
[topics."in-{unique}"]
role = "input"
partitions = {partitions}
config = {{ "retention.ms" = "3600000", "cleanup.policy" = "delete" }}
[topics."alerts-{unique}"]
role = "alerts"
partitions = 2
"""
    )
    return path


def test_apply_creates_then_reports_ok(kafka: KafkaSettings, tmp_path: Path, unique: str) -> None:
    spec = _spec(tmp_path, unique)
    env = {"SEQWATCH_BOOTSTRAP": kafka.bootstrap}
    first = run_seqwatch("topics", "apply", "--file", str(spec), env=env)
    assert first.returncode == 0, first.stderr.decode()
    assert f"created  in-{unique} (3 partitions".encode() in first.stdout
    assert f"created  alerts-{unique}".encode() in first.stdout

    client, metadata = kadmin.connect(kafka)
    assert len(metadata.topics[f"in-{unique}"].partitions) == 3
    config = kadmin.describe_configs(client, [f"in-{unique}"])[f"in-{unique}"]
    assert config["retention.ms"].value == "3600000"

    second = run_seqwatch("topics", "apply", "--file", str(spec), env=env)
    assert second.returncode == 0
    assert second.stdout.decode().split() == ["ok", f"in-{unique}", "ok", f"alerts-{unique}"]


def test_drift_is_reported_and_left_alone(
    kafka: KafkaSettings, tmp_path: Path, unique: str
) -> None:
    client, _ = kadmin.connect(kafka)
    kadmin.create_topic(client, f"in-{unique}", 1, 1, {"retention.ms": "60000"})
    spec = _spec(tmp_path, unique, partitions=3)
    result = run_seqwatch("topics", "apply", "--file", str(spec), "--bootstrap", kafka.bootstrap)
    assert result.returncode == 1
    out = result.stdout.decode()
    assert f"drift    in-{unique}: partitions 1 (declared 3)" in out
    assert "retention.ms=60000 (declared 3600000)" in out
    assert "(left unchanged)" in out
    _, metadata = kadmin.connect(kafka)
    assert len(metadata.topics[f"in-{unique}"].partitions) == 1, "a live topic is never altered"


def test_check_mode_creates_nothing(kafka: KafkaSettings, tmp_path: Path, unique: str) -> None:
    spec = _spec(tmp_path, unique)
    result = run_seqwatch(
        "topics", "apply", "--check", "--file", str(spec), "--bootstrap", kafka.bootstrap
    )
    assert result.returncode == 1
    assert f"missing  in-{unique}".encode() in result.stdout
    _, metadata = kadmin.connect(kafka)
    assert f"in-{unique}" not in metadata.topics


def test_unreachable_broker_is_one_line_no_traceback() -> None:
    result = run_seqwatch("topics", "apply", "--bootstrap", "127.0.0.1:1", "--timeout", "2")
    assert result.returncode == 2
    err = result.stderr.decode().strip().splitlines()
    assert err == ["seqwatch: cannot reach Kafka at 127.0.0.1:1 (timed out after 2 s)"]
    assert result.stdout == b""
