"""Worker settings, validated once at start-up with one line per mistake.

Each field a user can set carries its flag (`app.options.flag`): the `seqwatch worker`
options, their defaults, help texts and SEQWATCH_* variables are all derived from this
class (app.cli.worker), so nothing is typed twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from app.engine.settings import EngineSettings
from app.errors import ConfigError
from app.kafka.settings import KafkaSettings
from app.options import duration_flag, flag

DEFAULT_INPUT_TOPICS = (
    "winlogbeat",
    "logs-endpoint.events.process",
    "logs-endpoint.events.network",
)
GUARANTEES = ("exactly_once", "at_least_once")
INGESTS = ("confluent", "confluent-thread")
LOG_LEVELS = ("debug", "info", "warning", "error")


def _topics(value: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in value.split(",") if t.strip())


@dataclass(frozen=True)
class WorkerSettings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    input_topics: tuple[str, ...] = field(
        default=DEFAULT_INPUT_TOPICS,
        metadata=flag(
            "--input-topics", "Comma-separated shipper topics.", parse=_topics, show=",".join
        ),
    )
    input_pattern: str | None = field(
        default=None, metadata=flag("--input-pattern", "Regex of input topics (instead of a list).")
    )
    alerts_topic: str = field(
        default="alerts",
        metadata=flag("--alerts-topic", "Where alerts go, keyed by process.entity_id."),
    )
    deadletter_topic: str = field(
        default="seqwatch.deadletter",
        metadata=flag("--deadletter-topic", "Malformed records, with the reason in headers."),
    )
    group_id: str = field(
        default="seqwatch",
        metadata=flag(
            "--group-id", "Consumer group and Faust app id: workers with it share the work."
        ),
    )
    data_dir: Path = field(
        default=Path(".data/worker"),
        metadata=flag("--data-dir", "RocksDB state; one per worker process.", parse=Path, show=str),
    )
    partitions: int = field(
        default=4,
        metadata=flag(
            "--partitions", "Partitions of the state (and of topics the worker creates).", kind=int
        ),
    )
    replication_factor: int | None = field(
        default=None,
        metadata=flag(
            "--replication-factor",
            "Replication of the topics the worker creates [default: topics.toml's"
            " [defaults]; -1: the broker's default.replication.factor].",
            kind=int,
        ),
    )
    rule_path: Path | None = field(
        default=None,
        metadata=flag("--rule", "Rule file (TOML) [default: the bundled 7.10 rule].", parse=Path),
    )
    rule_paths: tuple[Path, ...] = field(
        default=(),
        metadata=flag(
            "--rules",
            "Rule files or folders, repeatable: every EQL rule under them (with --rule's"
            " too); one that does not load is reported in one line and skipped.",
            parse=Path,
            multiple=True,
        ),
    )
    engine: EngineSettings = field(default_factory=EngineSettings, metadata={"nested": True})
    processing_guarantee: str = field(
        default="exactly_once",
        metadata=flag(
            "--processing-guarantee", "Exactly-once transactions, or not.", choices=GUARANTEES
        ),
    )
    web_host: str = field(
        default="127.0.0.1", metadata=flag("--web-host", "Where /metrics and /healthz listen.")
    )
    web_port: int = field(
        default=6066,
        metadata=flag("--web-port", "Metrics (/metrics) and health (/healthz).", kind=int),
    )
    session_timeout_s: float = field(
        default=10.0,
        metadata=duration_flag(
            "--session-timeout", "How soon a dead worker's partitions move.", seconds=True
        ),
    )
    standby_replicas: int = field(
        default=0,
        metadata=flag("--standby-replicas", "Faust standby replicas of the state table.", kind=int),
    )
    block_cache_mb: int = field(
        default=32,
        metadata=flag("--block-cache-mb", "RocksDB block cache per state partition.", kind=int),
    )
    log_level: str = field(
        default="info", metadata=flag("--log-level", "Log level.", choices=LOG_LEVELS)
    )
    ingest: str = field(
        default="confluent",
        metadata=flag(
            "--ingest",
            "Who reads the shipper topics: a librdkafka stage in a process of its own (fast),"
            " or the same in a thread of the worker (one core).",
            choices=INGESTS,
        ),
    )
    commit_interval_s: float = field(
        default=0.1,
        metadata=duration_flag(
            "--commit-interval",
            "How often the state stage commits its transactions (bounds alert latency).",
            seconds=True,
        ),
    )

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
        rf = self.replication_factor
        if rf is not None and rf != -1 and rf < 1:
            out.append("--replication-factor must be -1 (the broker's default) or at least 1")
        out.extend(self.engine.problems())
        if self.processing_guarantee not in GUARANTEES:
            out.append(f"--processing-guarantee must be one of {', '.join(GUARANTEES)}")
        if self.ingest not in INGESTS:
            out.append(f"--ingest must be one of {', '.join(INGESTS)}")
        if not 0.01 <= self.commit_interval_s <= 60:
            out.append("--commit-interval must be between 10ms and 60s")
        if not 0 <= self.web_port <= 65535:
            out.append("--web-port must be 0-65535")
        if self.block_cache_mb < 1:
            out.append("--block-cache-mb must be at least 1")
        if self.rule_path is not None and not self.rule_path.is_file():
            out.append(f"--rule {self.rule_path}: no such file")
        for path in self.rule_paths:
            if not path.exists():
                out.append(f"--rules {path}: no such file or folder")
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
