"""A revoked partition's transactional producer stops only between two commits.

Faust stopped it whenever a rebalance assigned its partition away, also while the commit
timer's commit was sending its offsets: that commit waited on the stopped producer
forever, every later commit and the next revocation behind it, and the worker hung in
the rebalance with its whole group."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.structs import TopicPartition

from app.worker.faust_ext.transport import Producer

TID = "group-1-2"
OFFSETS = {TopicPartition("group-events-by-entity", 2): 305}


class FakeTransactionalProducer:
    """What the commit calls of an aiokafka transactional producer, in the order called."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.sending = asyncio.Event()
        self.release = asyncio.Event()
        self._txn_manager = SimpleNamespace(is_in_transaction=lambda: True)

    async def send_offsets_to_transaction(self, offsets: Any, group_id: str) -> None:
        assert "stop" not in self.calls, "offsets sent on a stopped producer never complete"
        self.calls.append("send_offsets")
        self.sending.set()
        await self.release.wait()

    async def commit_transaction(self) -> None:
        self.calls.append("commit")

    async def begin_transaction(self) -> None:
        self.calls.append("begin")

    async def stop(self) -> None:
        self.calls.append("stop")


def producer_with(txn: FakeTransactionalProducer) -> Any:
    producer: Any = Producer.__new__(Producer)
    producer._transaction_producers = {TID: txn}
    producer._trn_locks = {TID: asyncio.Lock()}
    producer.app = SimpleNamespace(failures=None)
    return producer


async def test_a_stop_waits_for_the_commit_under_way() -> None:
    txn = FakeTransactionalProducer()
    producer = producer_with(txn)
    commit = asyncio.ensure_future(producer.commit_transactions({TID: OFFSETS}, "group"))
    await txn.sending.wait()
    stop = asyncio.ensure_future(producer.stop_transaction(TID))
    await asyncio.sleep(0)  # the stop reaches the lock
    assert not stop.done() and "stop" not in txn.calls
    txn.release.set()
    await asyncio.gather(commit, stop)
    assert txn.calls == ["send_offsets", "commit", "begin", "stop"]
    assert TID not in producer._transaction_producers


async def test_a_commit_that_waited_for_a_stopped_producer_commits_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    txn = FakeTransactionalProducer()
    txn.release.set()
    producer = producer_with(txn)
    lock = producer._trn_locks[TID]
    await lock.acquire()  # a commit of the same transaction holds it
    stop = asyncio.ensure_future(producer.stop_transaction(TID))
    await asyncio.sleep(0)  # the stop waits for the lock first ...
    commit = asyncio.ensure_future(producer.commit_transactions({TID: OFFSETS}, "group"))
    for _ in range(3):  # ... and the commit, holding the producer, after it
        await asyncio.sleep(0)
    assert len(lock._waiters or ()) == 2
    lock.release()
    with caplog.at_level(logging.INFO, logger="seqwatch.worker"):
        await asyncio.gather(commit, stop)
    assert txn.calls == ["stop"], "the next owner fences and redoes that transaction"
    assert f"commit of {TID} skipped: its partition moved" in caplog.text
