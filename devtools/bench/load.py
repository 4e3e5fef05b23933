"""The bench's own topics: names, creation with explicit retention, loading, deletion.

Every topic the bench touches starts with `bench-<runid>-` (inputs, alerts, dead letters,
and the worker's internal topics through its `--group-id`), so clean-up can find all of
them by prefix and a run can never read or delete anyone else's topic.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from app.kafka import admin as kadmin
from app.kafka.io import ensure_topic, replay
from app.kafka.settings import KafkaSettings
from devtools.synth import TOPIC_NETWORK, TOPIC_PROCESS, TOPIC_WINLOGBEAT, Record

SHIPPER_TOPICS: tuple[str, ...] = (TOPIC_WINLOGBEAT, TOPIC_PROCESS, TOPIC_NETWORK)
PARTITIONS = 4
"""As topics/topics.toml declares the shipper topics, and the worker's default --partitions."""

RETENTION_MS = 86_400_000
"""Explicit, so a broker default (or a later change of it) cannot delete input mid-run;
one day because bench topics are deleted at the end unless --keep."""


def new_run_id() -> str:
    """Short, unique enough for concurrent runs, and valid in topic and group names."""
    return f"{time.strftime('%H%M%S')}{secrets.token_hex(3)}"


@dataclass(frozen=True)
class BenchNames:
    """Topic and group names of one bench run, all under one prefix."""

    run_id: str

    @property
    def prefix(self) -> str:
        return f"bench-{self.run_id}-"

    def inputs(self, phase: str = "") -> dict[str, str]:
        """shipper topic -> bench topic; `phase` separates the latency phase's fresh topics."""
        middle = f"{phase}-" if phase else ""
        return {t: f"{self.prefix}{middle}{t}" for t in SHIPPER_TOPICS}

    def alerts(self, tag: str) -> str:
        return f"{self.prefix}alerts-{tag}"

    def deadletter(self) -> str:
        return f"{self.prefix}deadletter"

    def warmup(self) -> str:
        """Where the latency phase's producer sends its first record (no worker reads it)."""
        return f"{self.prefix}warmup"

    def group(self, tag: str) -> str:
        """Also the prefix of the worker's internal topics (`<group>-events-by-entity`...)."""
        return f"{self.prefix}{tag}"


def create_topics(
    settings: KafkaSettings, names: Iterable[str], partitions: int = PARTITIONS
) -> None:
    for name in names:
        ensure_topic(settings, name, partitions, retention_ms=RETENTION_MS)


def load(
    settings: KafkaSettings, records: Sequence[Record], topic_map: dict[str, str]
) -> tuple[int, float]:
    """Produce every record with the project's producer (app.kafka.io.replay: idempotent,
    lz4, murmur2); returns (acknowledged, seconds). Records keep no key and get the
    produce time as timestamp, as a shipper's send would: the worker forwards that
    timestamp to its internal topics, whose retention is the broker default."""
    result = replay(settings, ((topic_map[r.topic], r.value) for r in records))
    if result.failed:
        from app.errors import SeqwatchError

        raise SeqwatchError(
            f"loading the bench topics: {result.failed} records failed ({'; '.join(result.errors)})"
        )
    return result.produced, result.seconds


def end_offsets(settings: KafkaSettings, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """High watermark per partition: what "the whole input" is for a reader."""
    _, metadata = kadmin.connect(settings)
    consumer = Consumer({**settings.confluent(), **kadmin.QUIET, "group.id": "seqwatch-bench-meta"})
    try:
        out: dict[tuple[str, int], int] = {}
        for topic in topics:
            for p in metadata.topics[topic].partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                out[(topic, p)] = high
        return out
    finally:
        consumer.close()


def delete_run(settings: KafkaSettings, prefix: str) -> list[str]:
    """Delete every topic and consumer group of the run (best effort for groups)."""
    admin, metadata = kadmin.connect(settings)
    topics = sorted(t for t in metadata.topics if t.startswith(prefix))
    kadmin.delete_topics(admin, topics)
    # Groups: best effort; a group whose member is still leaving is a harmless leftover.
    with contextlib.suppress(Exception):
        listed = admin.list_consumer_groups().result(timeout=10).valid
        groups = [g.group_id for g in listed if g.group_id.startswith(prefix)]
        if groups:
            for future in admin.delete_consumer_groups(groups, request_timeout=10).values():
                with contextlib.suppress(Exception):
                    future.result()
    return topics


def partitions_of(settings: KafkaSettings, topics: Sequence[str]) -> list[TopicPartition]:
    _, metadata = kadmin.connect(settings)
    return [TopicPartition(t, p) for t in topics for p in sorted(metadata.topics[t].partitions)]


def wait_visible(
    settings: KafkaSettings, topics: Sequence[str], expected: int, timeout: float = 60
) -> int:
    """Until the topics' high watermarks add up to `expected` (acks are in; this guards
    against counting before the broker's metadata agrees)."""
    deadline = time.monotonic() + timeout
    total = 0
    while time.monotonic() < deadline:
        total = sum(end_offsets(settings, topics).values())
        if total >= expected:
            return total
        time.sleep(0.2)
    return total
