"""A Faust table whose changelog writes leave as one record batch per partition and batch.

Faust sends each table write to the changelog on its own: a FutureMessage, a queue, a
producer `send` and a delivery callback per key, and each value serialised twice (for
RocksDB and for the changelog). In a storm of starts that was a third of the state
stage's time (docs/benchmarks.md, "Storms"). `ChangelogTable` (the app's `Table`
setting) keeps the keys and values a batch wrote, in order, and `send_changelog_batch`
hands them to the producer as whole aiokafka record batches in the transaction of the
batch's partition; each batch's last offset becomes the table's persisted offset when
the transaction commits, as Faust's own delivery callback does.

Values are bytes (`value_type=bytes`, the "raw" serializer; `state.TableState` writes
orjson): the same bytes Faust's json codec wrote for these JSON values, so existing state
and changelogs read the same.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust

ChangelogWrite = tuple[int, bytes, bytes | None]
"""(changelog partition, key bytes, value bytes or None for a tombstone)"""


class ChangelogTable(faust.Table):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unsent: list[ChangelogWrite] = []

    def on_key_set(self, key: Any, value: Any) -> None:
        self._unsent.append((self.partition_for_key(key), self._key_bytes(key), value))

    def on_key_del(self, key: Any) -> None:
        self._unsent.append((self.partition_for_key(key), self._key_bytes(key), None))

    def _key_bytes(self, key: Any) -> bytes:
        encoded, _ = self.changelog_topic.prepare_key(key, self.key_serializer)
        return encoded  # type: ignore[no-any-return]

    async def send_changelog_batch(self) -> list[asyncio.Future[Any]]:
        """Send the writes since the last call; one future per record batch, done once
        the broker has it and its offset is noted for the commit (raises if refused)."""
        unsent, self._unsent = self._unsent, []
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for partition, key, value in unsent:
            by_partition.setdefault(partition, []).append((key, value))
        topic = self.changelog_topic.get_topic_name()
        producer = self.app.producer
        transactions = self.app.consumer.transactions if self.app.in_transaction else None
        deliveries = []
        for partition, records in by_partition.items():
            for fut, count in await producer.send_records(topic, partition, records, transactions):
                deliveries.append(asyncio.ensure_future(self._persist(fut, count)))
        return deliveries

    async def _persist(self, fut: Any, count: int) -> None:
        meta = await fut
        last = meta.offset + count - 1
        if self.app.in_transaction:
            self.app.tables.persist_offset_on_commit(self.data, meta.topic_partition, last)
        else:
            self.data.set_persisted_offset(meta.topic_partition, last)
