"""Drive real worker processes and read topics, for the integration tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from app.kafka import admin as kadmin
from app.kafka.settings import KafkaSettings
from devtools.harness import WorkerProcess

SAMPLE_TOPICS = ("winlogbeat", "logs-endpoint.events.process", "logs-endpoint.events.network")


class Env:
    """Unique topics, group and state for one worker under test."""

    def __init__(self, kafka: KafkaSettings, tmp: Path, unique: str) -> None:
        self.kafka = kafka
        self.tmp = tmp
        self.unique = unique
        self.inputs = {name: f"{name}-{unique}" for name in SAMPLE_TOPICS}
        self.alerts = f"alerts-{unique}"
        self.deadletter = f"deadletter-{unique}"
        self.group = f"group-{unique}"

    def worker(self, *extra: str) -> WorkerProcess:
        return WorkerProcess(
            self.kafka,
            self.tmp / "state",
            self.tmp / "worker.log",
            "--input-topics",
            ",".join(self.inputs.values()),
            "--alerts-topic",
            self.alerts,
            "--deadletter-topic",
            self.deadletter,
            "--group-id",
            self.group,
            "--partitions",
            "4",
            *extra,
        )


def produce(
    kafka: KafkaSettings,
    topic: str,
    values: list[bytes],
    compression: str = "lz4",
    keys: list[bytes] | None = None,
) -> None:
    """Produce and wait for every acknowledgement (keys spread records like a shipper's)."""
    from app.kafka.io import ensure_topic, producer_config

    ensure_topic(kafka, topic, 4)
    producer = Producer(producer_config(kafka, compression))
    for i, value in enumerate(values):
        producer.produce(topic, value=value, key=keys[i] if keys else None)
    assert producer.flush(30) == 0


class TopicReader:
    """Reads a whole topic (read_committed) incrementally, without a consumer group."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        _, metadata = kadmin.connect(kafka)
        if topic not in metadata.topics:
            client, _ = kadmin.connect(kafka)
            kadmin.create_topic(client, topic, 4)
            _, metadata = kadmin.connect(kafka)
        self.consumer = Consumer(
            {
                **kafka.confluent(),
                **kadmin.QUIET,
                "group.id": "test-reader",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self.consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.topics[topic].partitions]
        )
        self.records: list[Any] = []

    def poll(self, seconds: float = 0.5) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(num_messages=500, timeout=0.1):
                if not msg.error():
                    self.records.append(msg)

    def wait_for(
        self,
        predicate: Callable[[list[Any]], bool],
        timeout: float = 60.0,
        alive: Callable[[], None] | None = None,
    ) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll(0.3)
            if predicate(self.records):
                return self.records
            if alive:
                alive()
        raise AssertionError(f"timed out with {len(self.records)} records")

    def values(self) -> list[dict[str, Any]]:
        return [orjson.loads(m.value()) for m in self.records]

    def close(self) -> None:
        self.consumer.close()


def changelog_values(kafka: KafkaSettings, group: str) -> tuple[int, int]:
    """(values, largest value in bytes) on a worker's state changelog, read committed."""
    reader = TopicReader(kafka, f"{group}-sequences-changelog")
    reader.poll(3.0)
    sizes = [len(m.value()) for m in reader.records if m.value() is not None]
    reader.close()
    return len(sizes), max(sizes, default=0)


def alert_id(alert: dict[str, Any]) -> str:
    from app.alerts_view import field

    return str(field(alert, "alert.id"))
