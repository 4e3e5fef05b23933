"""`seqwatch worker`: run one detection worker (Faust)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from app.cli.options import kafka_options, pop_kafka_settings
from app.durations import parse_duration
from app.kafka.settings import KafkaSettings
from app.worker.settings import DEFAULT_INPUT_TOPICS, GUARANTEES, WorkerSettings


def _topics(value: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in value.split(",") if t.strip())


@click.command()
@kafka_options
@click.option(
    "--input-topics",
    envvar="SEQWATCH_INPUT_TOPICS",
    default=",".join(DEFAULT_INPUT_TOPICS),
    show_default=True,
    help="Comma-separated shipper topics.",
)
@click.option(
    "--input-pattern",
    envvar="SEQWATCH_INPUT_PATTERN",
    help="Regex of input topics (instead of a list).",
)
@click.option("--alerts-topic", envvar="SEQWATCH_ALERTS_TOPIC", default="alerts", show_default=True)
@click.option(
    "--deadletter-topic",
    envvar="SEQWATCH_DEADLETTER_TOPIC",
    default="seqwatch.deadletter",
    show_default=True,
)
@click.option(
    "--group-id",
    envvar="SEQWATCH_GROUP_ID",
    default="seqwatch",
    show_default=True,
    help="Consumer group and Faust app id.",
)
@click.option(
    "--data-dir",
    envvar="SEQWATCH_DATA_DIR",
    default=".data/worker",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="RocksDB state; one per worker process.",
)
@click.option(
    "--partitions",
    envvar="SEQWATCH_PARTITIONS",
    default=4,
    show_default=True,
    type=int,
    help="Partitions of the state (and of topics the worker creates).",
)
@click.option(
    "--rule",
    "rule_path",
    envvar="SEQWATCH_RULE",
    type=click.Path(path_type=Path),
    help="Rule file (TOML) [default: the bundled 7.10 rule].",
)
@click.option(
    "--ttl",
    envvar="SEQWATCH_TTL",
    default="9m",
    show_default=True,
    help="Longest start-to-network span, in event time.",
)
@click.option(
    "--lateness",
    envvar="SEQWATCH_LATENESS",
    default="60s",
    show_default=True,
    help="Allowed disorder of event time.",
)
@click.option(
    "--alert-cap",
    envvar="SEQWATCH_ALERT_CAP",
    default=100,
    show_default=True,
    type=int,
    help="Alerts per 5-minute bucket (0 = unlimited).",
)
@click.option(
    "--processing-guarantee",
    envvar="SEQWATCH_PROCESSING_GUARANTEE",
    type=click.Choice(GUARANTEES),
    default="exactly_once",
    show_default=True,
)
@click.option(
    "--max-record-bytes",
    envvar="SEQWATCH_MAX_RECORD_BYTES",
    default=1_048_576,
    show_default=True,
    type=int,
)
@click.option("--web-host", envvar="SEQWATCH_WEB_HOST", default="127.0.0.1", show_default=True)
@click.option(
    "--web-port",
    envvar="SEQWATCH_WEB_PORT",
    default=6066,
    show_default=True,
    type=int,
    help="Metrics (/metrics) and health (/healthz).",
)
@click.option(
    "--session-timeout",
    envvar="SEQWATCH_SESSION_TIMEOUT",
    default="10s",
    show_default=True,
    help="How soon a dead worker's partitions move.",
)
@click.option(
    "--standby-replicas", envvar="SEQWATCH_STANDBY_REPLICAS", default=0, show_default=True, type=int
)
@click.option(
    "--ingest",
    envvar="SEQWATCH_INGEST",
    type=click.Choice(["confluent", "confluent-thread"]),
    default="confluent",
    show_default=True,
    help=(
        "Who reads the shipper topics: a librdkafka stage in a process of its own (fast),"
        " or the same in a thread of the worker (one core)."
    ),
)
@click.option(
    "--commit-interval",
    envvar="SEQWATCH_COMMIT_INTERVAL",
    default="100ms",
    show_default=True,
    help="How often the state stage commits its transactions (bounds alert latency).",
)
@click.option(
    "--restart/--no-restart",
    envvar="SEQWATCH_RESTART",
    default=True,
    show_default=True,
    help="Restart the worker process after a failure.",
)
@click.option(
    "--log-level",
    envvar="SEQWATCH_LOG_LEVEL",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def worker(kafka: KafkaSettings, restart: bool, **options: Any) -> None:
    """Run a detection worker: shipper topics in, alerts out, state in RocksDB.

    The worker runs in a child process that is restarted after a failure (with
    backoff); --no-restart runs it in this process, for a supervisor of your own.
    """
    from app.worker.run import run_worker
    from app.worker.supervise import supervise

    settings = settings_from(kafka, **options)
    if not restart:
        sys.exit(run_worker(settings))
    sys.exit(supervise(lambda: run_worker(settings), data_dir=settings.data_dir))


def settings_from_environment() -> WorkerSettings:
    """Settings from SEQWATCH_* variables and defaults alone (for `faust -A app`)."""
    ctx = worker.make_context("worker", [])
    params = dict(ctx.params)
    params.pop("restart")
    return settings_from(kafka=pop_kafka_settings(params), **params)


def settings_from(
    kafka: KafkaSettings,
    input_topics: str,
    input_pattern: str | None,
    alerts_topic: str,
    deadletter_topic: str,
    group_id: str,
    data_dir: Path,
    partitions: int,
    rule_path: Path | None,
    ttl: str,
    lateness: str,
    alert_cap: int,
    processing_guarantee: str,
    max_record_bytes: int,
    web_host: str,
    web_port: int,
    session_timeout: str,
    standby_replicas: int,
    ingest: str,
    commit_interval: str,
    log_level: str,
) -> WorkerSettings:
    """Turn the command's options into validated WorkerSettings."""
    return WorkerSettings(
        kafka=kafka,
        input_topics=_topics(input_topics),
        input_pattern=input_pattern,
        alerts_topic=alerts_topic,
        deadletter_topic=deadletter_topic,
        group_id=group_id,
        data_dir=data_dir,
        partitions=partitions,
        rule_path=rule_path,
        ttl_ms=parse_duration(ttl, what="--ttl"),
        lateness_ms=parse_duration(lateness, what="--lateness"),
        alert_cap=alert_cap,
        processing_guarantee=processing_guarantee,
        max_record_bytes=max_record_bytes,
        web_host=web_host,
        web_port=web_port,
        session_timeout_s=parse_duration(session_timeout, what="--session-timeout") / 1000,
        standby_replicas=standby_replicas,
        ingest=ingest,
        commit_interval_s=parse_duration(commit_interval, what="--commit-interval") / 1000,
        log_level=log_level,
    ).validate()
