"""Producing NDJSON files to a topic and reading a topic back, with confluent-kafka.

confluent-kafka (librdkafka) rather than aiokafka: these are batch tools where
throughput matters and there is no event loop to share.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from app.errors import SeqwatchError
from app.kafka import admin as kadmin
from app.kafka.settings import KafkaSettings

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


def producer_config(settings: KafkaSettings, compression: str = "lz4") -> dict[str, object]:
    return {
        **settings.confluent(),
        **kadmin.QUIET,
        "enable.idempotence": True,
        "linger.ms": 20,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 500_000,
        "compression.type": compression,
        "message.max.bytes": 8_388_608,
        # Faust and the Java clients hash keys with murmur2; librdkafka defaults to CRC32.
        "partitioner": "murmur2_random",
    }


def ensure_topic(
    settings: KafkaSettings, topic: str, partitions: int, retention_ms: int | None = 604_800_000
) -> bool:
    """Create the topic if absent, with explicit retention (replayed records can be old)."""
    client, metadata = kadmin.connect(settings)
    if topic in metadata.topics:
        return False
    config = {"retention.ms": str(retention_ms)} if retention_ms else {}
    config["max.message.bytes"] = "8388608"
    return kadmin.create_topic(client, topic, partitions, 1, config)


def read_lines(paths: Iterable[Path]) -> Iterator[tuple[Path, bytes]]:
    for path in paths:
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise SeqwatchError(f"cannot read {path}: {exc.strerror}") from exc
        with handle:
            for line in handle:
                line = line.rstrip(b"\r\n")
                if line.strip():
                    yield path, line


def event_time_s(line: bytes) -> float | None:
    """The record's @timestamp for --speed pacing; None when it has none."""
    from app.engine.timestamps import parse_timestamp_ms

    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    ms = parse_timestamp_ms(doc.get("@timestamp"))
    return None if ms is None else ms / 1000


@dataclass
class ReplayResult:
    produced: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Pacer:
    """Holds the producer back to a rate (--rate) or to recorded time (--speed)."""

    def __init__(self, rate: float | None, speed: float | None) -> None:
        self.rate = rate
        self.speed = speed
        self._start = time.monotonic()
        self._first_event: float | None = None
        self._count = 0

    def wait(self, line: bytes) -> None:
        self._count += 1
        due: float | None = None
        if self.rate:
            due = self._start + self._count / self.rate
        elif self.speed:
            ts = event_time_s(line)
            if ts is not None:
                if self._first_event is None:
                    # The clock starts at the first paced record, not before any set-up.
                    self._first_event, self._start = ts, time.monotonic()
                due = self._start + max(0.0, ts - self._first_event) / self.speed
        if due is not None:
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def replay(
    settings: KafkaSettings,
    lines: Iterable[tuple[str, bytes]],
    *,
    compression: str = "lz4",
    rate: float | None = None,
    speed: float | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Produce (topic, value) pairs; returns counts once every record is acknowledged."""
    result = ReplayResult()
    producer = Producer(producer_config(settings, compression))
    pacer = Pacer(rate, speed)
    began = time.monotonic()

    def delivered(err: KafkaError | None, msg: Message) -> None:
        if err is None:
            result.produced += 1
        else:
            result.failed += 1
            if len(result.errors) < 5:
                result.errors.append(err.str())

    pending = 0
    paced = bool(rate or speed)
    for topic, value in lines:
        pacer.wait(value)
        # Paced records carry the moment they were sent (librdkafka may stamp a batch).
        stamp = {"timestamp": int(time.time() * 1000)} if paced else {}
        while True:
            try:
                producer.produce(topic, value=value, on_delivery=delivered, **stamp)
                break
            except BufferError:
                producer.poll(0.05)
        pending += 1
        if pending % 1000 == 0:
            producer.poll(0)
            if on_progress:
                on_progress(1000)
    remaining = producer.flush(60)
    if on_progress:
        on_progress(pending % 1000)
    if remaining:
        result.failed += remaining
        result.errors.append(f"{remaining} records not acknowledged within 60 s")
    result.seconds = time.monotonic() - began
    return result


def consume(
    settings: KafkaSettings,
    topic: str,
    *,
    from_beginning: bool = True,
    idle_timeout: float = 10.0,
    follow: bool = False,
    read_committed: bool = True,
) -> Iterator[Message]:
    """Every record of every partition, without joining a group (nothing is committed).

    Stops after `idle_timeout` seconds without a new record, unless `follow`.
    """
    _, metadata = kadmin.connect(settings)
    info = metadata.topics.get(topic)
    if info is None or info.error is not None:
        raise SeqwatchError(f"topic {topic!r} does not exist on {settings.bootstrap}")
    consumer = Consumer(
        {
            **settings.confluent(),
            **kadmin.QUIET,
            "group.id": "seqwatch-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
            "fetch.max.bytes": 52_428_800,
            "max.partition.fetch.bytes": 8_388_608,
        }
    )
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    consumer.assign([TopicPartition(topic, p, start) for p in info.partitions])
    last = time.monotonic()
    try:
        while True:
            batch = consumer.consume(num_messages=1000, timeout=0.2)
            for msg in batch:
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise SeqwatchError(f"reading {topic}: {msg.error().str()}")
                yield msg
            if batch:
                last = time.monotonic()
            elif not follow and time.monotonic() - last > idle_timeout:
                return
    finally:
        consumer.close()
