"""Worker settings, validated once at start-up with one line per mistake."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from app.errors import ConfigError
from app.kafka.settings import KafkaSettings

DEFAULT_INPUT_TOPICS = (
    "winlogbeat",
    "logs-endpoint.events.process",
    "logs-endpoint.events.network",
)
GUARANTEES = ("exactly_once", "at_least_once")
INGESTS = ("confluent", "confluent-thread")


@dataclass(frozen=True)
class WorkerSettings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    input_topics: tuple[str, ...] = DEFAULT_INPUT_TOPICS
    input_pattern: str | None = None
    alerts_topic: str = "alerts"
    deadletter_topic: str = "seqwatch.deadletter"
    group_id: str = "seqwatch"
    data_dir: Path = Path(".data/worker")
    partitions: int = 4
    rule_path: Path | None = None
    ttl_ms: int = 9 * 60_000
    lateness_ms: int = 60_000
    alert_cap: int = 100
    processing_guarantee: str = "exactly_once"
    max_record_bytes: int = 1_048_576
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    session_timeout_s: float = 10.0
    standby_replicas: int = 0
    block_cache_mb: int = 32
    log_level: str = "info"
    ingest: str = "confluent"
    commit_interval_s: float = 0.1

    def problems(self) -> list[str]:
        out: list[str] = []
        if self.input_pattern:
            try:
                re.compile(self.input_pattern)
            except re.error as exc:
                out.append(f"--input-pattern {self.input_pattern!r} is not a valid regex: {exc}")
        elif not self.input_topics:
            out.append("--input-topics is empty (give topics or --input-pattern)")
        for name, topic in (
            ("--alerts-topic", self.alerts_topic),
            ("--deadletter-topic", self.deadletter_topic),
        ):
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", topic):
                out.append(f"{name} {topic!r} is not a valid Kafka topic name")
        if self.alerts_topic in self.input_topics:
            out.append("--alerts-topic must not be one of the input topics")
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", self.group_id):
            out.append(f"--group-id {self.group_id!r} may use letters, digits, '.', '_' and '-'")
        if self.partitions < 1:
            out.append("--partitions must be at least 1")
        if self.ttl_ms <= 0:
            out.append("--ttl must be positive")
        if self.lateness_ms < 0:
            out.append("--lateness must not be negative")
        if self.alert_cap < 0:
            out.append("--alert-cap must be 0 (unlimited) or more")
        if self.processing_guarantee not in GUARANTEES:
            out.append(f"--processing-guarantee must be one of {', '.join(GUARANTEES)}")
        if self.max_record_bytes < 1024:
            out.append("--max-record-bytes must be at least 1024")
        if self.ingest not in INGESTS:
            out.append(f"--ingest must be one of {', '.join(INGESTS)}")
        if not 0.01 <= self.commit_interval_s <= 60:
            out.append("--commit-interval must be between 10ms and 60s")
        if not 0 <= self.web_port <= 65535:
            out.append("--web-port must be 0-65535")
        if self.rule_path is not None and not self.rule_path.is_file():
            out.append(f"--rule {self.rule_path}: no such file")
        return out

    def validate(self) -> WorkerSettings:
        errors = self.problems()
        if errors:
            raise ConfigError("invalid worker settings:\n  " + "\n  ".join(errors))
        return self

    @property
    def repartition_topic(self) -> str:
        """Named by us, not by Faust's module path (docs/design.md)."""
        return f"{self.group_id}-events-by-entity"

    @property
    def table_name(self) -> str:
        return "sequences"

    @property
    def changelog_topic(self) -> str:
        return f"{self.group_id}-{self.table_name}-changelog"
