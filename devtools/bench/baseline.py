"""The baseline: a bare confluent-kafka consumer reading the whole bench input.

This is the issue's yardstick ("a confluent-kafka consume(10000) loop with orjson parsing:
~90,000 events/s"): the most a Python process with the same client can do when it only
reads and parses, so `ratio` says how much the worker's own work costs. The consumer uses
the same fetch settings and isolation level as the worker's ingest stage, so the ratio
compares work, not configuration. No group membership: partitions are assigned from the
beginning, which costs no rebalance and commits nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from app.errors import SeqwatchError
from app.kafka import admin as kadmin
from app.kafka.settings import KafkaSettings
from app.worker.ingest import FETCH

LARGE_FETCH = {"max.partition.fetch.bytes": 8_388_608}
"""A bare consumer's usual choice (librdkafka's default is 1 MiB): large fetches, one
partition far ahead of the others, which the worker cannot afford (ingest.FETCH)."""


def consumer_config(
    settings: KafkaSettings, fetch: Mapping[str, int] | None = None
) -> dict[str, object]:
    """What app/worker/ingest.py gives its consumer, minus the group protocol; `fetch`
    overrides its fetch settings."""
    return {
        **settings.confluent(),
        **kadmin.QUIET,
        "group.id": f"seqwatch-bench-baseline-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "isolation.level": "read_committed",
        **FETCH,
        **(fetch or {}),
    }


@dataclass
class BaselineRun:
    events: int
    seconds: float
    bytes: int


def read_all(
    settings: KafkaSettings,
    partitions: list[TopicPartition],
    expected: int,
    *,
    parse: bool,
    fetch: Mapping[str, int] | None = None,
    timeout: float = 600.0,
) -> BaselineRun:
    """Read `expected` records from the beginning of `partitions`; with `parse`, orjson.loads
    every value (the part of any real consumer's work no engine can skip).

    The clock starts after assign() (client construction is not consumption) and stops
    when the last expected record is in hand."""
    consumer = Consumer(consumer_config(settings, fetch))
    try:
        consumer.assign(
            [TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in partitions]
        )
        count = 0
        size = 0
        loads = orjson.loads
        started = time.perf_counter()
        deadline = time.monotonic() + timeout
        while count < expected:
            batch = consumer.consume(10_000, 1.0)
            for msg in batch:
                if msg.error() is not None:
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise SeqwatchError(f"baseline consumer: {msg.error().str()}")
                value = msg.value()
                count += 1
                if value is not None:
                    size += len(value)
                    if parse:
                        loads(value)
            if not batch and time.monotonic() > deadline:
                raise SeqwatchError(
                    f"baseline consumer read {count} of {expected} records in {timeout:.0f} s"
                )
        elapsed = time.perf_counter() - started
        return BaselineRun(count, elapsed, size)
    finally:
        consumer.close()
