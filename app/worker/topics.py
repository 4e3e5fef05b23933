"""Which topics a worker uses, with the configs topics/topics.toml declares for them, and
whether they can take the largest record seqwatch may write to each."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from app.engine import Engine
from app.errors import ConfigError
from app.kafka import admin as kadmin
from app.topics import TopicSpec, load_specs
from app.worker.settings import WorkerSettings

DEADLETTER_HEADROOM = 65_536
"""Room a dead letter needs beside its value: key, headers, record framing."""


def topic_specs(settings: WorkerSettings) -> list[TopicSpec]:
    """Every topic the worker uses, as topics/topics.toml declares its role and configs.

    Topics the user named (--input-topics, --alerts-topic, --deadletter-topic) take the
    configs of the declared topic of the same name, else of the first one of their role;
    internal topics are declared by name with `{group}`. The state topics and the inputs
    have --partitions partitions (the state is partitioned like them).
    """
    declared = load_specs(
        replication_factor=settings.replication_factor, group_id=settings.group_id
    )
    by_name = {spec.name: spec for spec in declared}

    def like(name: str, role: str, partitions: int | None = None) -> TopicSpec:
        base = by_name.get(name) or next((s for s in declared if s.role == role), None)
        if base is None:
            raise ConfigError(f"topic file declares no {role} topic to model {name} on")
        return replace(base, name=name, partitions=partitions or base.partitions)

    wanted = []
    if not settings.input_pattern:
        wanted += [like(t, "input", settings.partitions) for t in settings.input_topics]
    wanted.append(like(settings.alerts_topic, "alerts", settings.partitions))
    wanted.append(like(settings.deadletter_topic, "deadletter"))
    for name in (settings.repartition_topic, settings.changelog_topic):
        if name not in by_name:
            raise ConfigError(f"topic file declares no internal topic {name!r}")
        wanted.append(replace(by_name[name], partitions=settings.partitions))
    return wanted


def largest_records(settings: WorkerSettings, engine: Engine) -> dict[str, int]:
    """The largest record value the worker writes to each of its output topics."""
    return {
        settings.alerts_topic: engine.max_alert_bytes,
        settings.deadletter_topic: deadletter_value_bytes(settings) + DEADLETTER_HEADROOM // 2,
        settings.repartition_topic: engine.max_event_bytes_out,
        settings.changelog_topic: engine.max_state_bytes,
    }


def check_capacity(client: Any, largest: dict[str, int]) -> list[str]:
    """One line per output topic whose `max.message.bytes` is below what may be sent there.

    Not fatal: such a record is refused when (if ever) it is sent, and the worker then
    stops and says so (app.worker.failures); this says it at start, before any is lost.
    """
    problems = []
    for name, entries in kadmin.describe_configs(client, list(largest)).items():
        entry = entries.get("max.message.bytes")
        limit = int(entry.value) if entry is not None and entry.value else None
        if limit is not None and limit < largest[name]:
            problems.append(
                f"topic {name} takes records of at most {limit} bytes (max.message.bytes) but"
                f" seqwatch may write up to {largest[name]} bytes there: raise it, or a record"
                " that large will stop the worker until it is raised"
            )
    return problems


def deadletter_value_bytes(settings: WorkerSettings) -> int:
    """The largest dead-letter value: the dead-letter topic's declared limit less room."""
    spec = next(s for s in topic_specs(settings) if s.name == settings.deadletter_topic)
    limit = int(spec.config.get("max.message.bytes", "1048588"))
    return max(1024, limit - DEADLETTER_HEADROOM)
