"""Route every send to the transaction of the record being processed.

Faust's exactly-once mode (faust-streaming 0.15) picks the transactional producer of
a send from the *destination* topic-partition. That has two faults we measured on a
real broker: a record re-keyed to partition q of the repartition topic joins the
transaction of q, which commits only when q's own offsets advance, so it can stay
invisible to read_committed readers indefinitely (alerts never came); and a send to a
topic the app does not consume (alerts, dead letters) finds no producer and goes out
outside any transaction, so a crash can duplicate it (faust#177, #323, #517).

Kafka Streams binds a task's outputs to the transaction of its *input* partition:
outputs, state changelog writes and the input offset commit then succeed or fail
together. This patch does the same: with a current event, the send uses the producer
of the event's topic-partition group, which is exactly the transaction Faust commits
with that event's offset.

A third patch keeps a commit from landing in the middle of an event: Faust commits on a
timer, and a transaction holding half of an event's effects (its state change but not
yet its alert) would commit while the event's own offset does not. After a crash the
event is processed again against a state that already marks it done, and the alert is
lost (seen in the kill -9 test). The agent holds `EVENT_LOCK` while it handles an event;
the commit (from reading the acked offsets to the end of the transaction) waits for it.

A fourth piece sends an event's state changes from the agent itself. Faust queues
changelog writes in the producer buffer, which a background task drains; waiting for the
buffer to look empty is not enough, because that task may have taken a write and still
be sending it (behind a metadata wait or the transaction lock) when the event is acked
and a commit runs. The write then lands in the *next* transaction, the event's offset in
this one, and a kill -9 in between loses it: a pending start vanishes and its alert with
it (the kill -9 test caught this). `send_changelog_now` waits out the background task,
takes the queued writes in order and sends them before the event is acknowledged.

A fifth measure commits when partitions are revoked, as Kafka Streams does. Faust drops
the acked offsets of revoked partitions and leaves their transactions open across the
rebalance. A worker that gets a partition back (an eager rebalance revokes them all)
restores its table from the changelog, which puts back the *committed* values of the
keys those events changed, seeks to the committed offset and handles the events again,
in the still-open transaction that then commits both runs: the scale-out test saw
alerts twice from one worker. Committed at revocation, offsets, state and alerts agree,
and a partition that moves goes with a closed transaction. `begin_transaction` then
skips a producer already in one (Faust's `maybe_begin_transaction` means that, and
logged an error).

A second patch makes the transaction commit idempotent: on shutdown Faust commits
"and ends" the transactions more than once, and aiokafka then raises
`IllegalOperation('Not in the middle of a transaction')`, which left the worker
hanging on SIGTERM instead of stopping cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

log = logging.getLogger("seqwatch.worker")
_installed = False
EVENT_LOCK = asyncio.Lock()
"""Held by the detect agent from reading an event until its effects are all sent."""


_background_sends: dict[int, int] = {}
_background_idle = asyncio.Event()
_background_taken: dict[int, list[Any]] = {}
_send_pending: Any = None


async def send_changelog_now(buffer: Any) -> list[Any]:
    """Send the queued table changelog writes from the calling task, in order.

    Called by the agent with the event current, so each write joins that event's
    transaction (see `send` above) and is in the producer before the event is acked.
    Returns the delivery futures of every changelog write since the last call, including
    those the buffer's own task took first: the agent awaits them all, so that a write
    the broker refused fails the batch instead of vanishing into a log line.
    """
    while _background_sends.get(id(buffer), 0):
        _background_idle.clear()
        await _background_idle.wait()
    pending = buffer.pending
    writes = [pending.get_nowait() for _ in range(pending.qsize())]
    send_pending = _send_pending or type(buffer)._send_pending
    for fut in writes:
        await send_pending(buffer, fut)
    return _background_taken.pop(id(buffer), []) + writes


def set_current_event(event: Any) -> Any:
    """Make `event` Faust's current event in this task (table partition, transaction)."""
    from faust.streams import _current_event

    return _current_event.set(weakref.ref(event))


def reset_current_event(token: Any) -> None:
    from faust.streams import _current_event

    _current_event.reset(token)


def install() -> None:
    global _installed
    if _installed:
        return
    from faust.streams import current_event
    from faust.transport.consumer import Consumer, TransactionManager
    from faust.transport.drivers.aiokafka import Producer
    from faust.transport.producer import ProducerBuffer

    original = TransactionManager.send

    async def send(
        self: Any,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Any:
        event = current_event()
        if event is None:
            return await original(
                self,
                topic,
                key,
                value,
                partition,
                timestamp,
                headers,
                transactional_id=transactional_id,
            )
        source = event.message.tp
        group = self.app.assignor.group_for_topic(source.topic)
        tid = f"{self.app.conf.id}-{group}-{source.partition}"
        destination = self.consumer.key_partition(topic, key, partition)
        return await self.producer.send(
            topic, key, value, destination, timestamp, headers, transactional_id=tid
        )

    original_force_commit = Consumer.force_commit

    async def force_commit(
        self: Any, topics: Any = None, start_new_transaction: bool = True
    ) -> bool:
        # The offsets are read under the lock too: an event finished after they were read
        # would otherwise have its effects in this transaction and its offset in the next.
        async with EVENT_LOCK:
            return bool(await original_force_commit(self, topics, start_new_transaction))

    original_revoked = Consumer.on_partitions_revoked

    async def on_partitions_revoked(self: Any, revoked: Any) -> None:
        # Faust forgets the acked offsets of revoked partitions first thing (they "will be
        # processed again") but leaves their transaction open: commit before it does. A
        # failed commit leaves RocksDB ahead of the changelog, so it ends the process
        # (inside commit_transactions) rather than letting the rebalance carry on.
        if not await self.commit():  # False also when it waited for a running commit
            await self.commit()
        await original_revoked(self, revoked)

    original_send_pending = ProducerBuffer._send_pending

    async def counted_send_pending(self: Any, fut: Any) -> None:
        """The buffer's own task: count the write it holds, so others can wait it out."""
        _background_sends[id(self)] = _background_sends.get(id(self), 0) + 1
        _background_taken.setdefault(id(self), []).append(fut)
        try:
            await original_send_pending(self, fut)
        finally:
            _background_sends[id(self)] -= 1
            _background_idle.set()

    original_begin = Producer.begin_transaction

    async def begin_transaction(self: Any, transactional_id: str) -> None:
        producer = self._transaction_producers.get(transactional_id)
        if producer is not None and producer._txn_manager.is_in_transaction():
            return
        await original_begin(self, transactional_id)

    Producer.begin_transaction = begin_transaction  # type: ignore[method-assign]
    global _send_pending
    _send_pending = original_send_pending
    ProducerBuffer._send_pending = counted_send_pending  # type: ignore[method-assign]
    TransactionManager.send = send  # type: ignore[method-assign]
    Consumer.force_commit = force_commit  # type: ignore[method-assign]
    Consumer.on_partitions_revoked = on_partitions_revoked  # type: ignore[method-assign]
    Producer.commit_transactions = commit_transactions  # type: ignore[method-assign]
    _installed = True


async def commit_transactions(
    self: Any,
    tid_to_offset_map: Any,
    group_id: str,
    start_new_transaction: bool = True,
) -> None:
    """Faust's commit, tolerating producers that are between transactions.

    Any failure to commit ends the worker (see app.worker.failures): the transaction's
    outcome is then unknown, and only a restart that fences it and rebuilds state from
    the changelog is sure to agree with what Kafka holds. A commit for a transactional
    id this worker has no producer for has nothing in flight to commit (its partition was
    never assigned here, or its producer was closed with its partition) and is skipped.
    """
    failures = getattr(self.app, "seqwatch_failures", None)
    committed: dict[tuple[str, int], int] = {}
    for transactional_id, offsets in tid_to_offset_map.items():
        producer = self._transaction_producers.get(transactional_id)
        lock = self._trn_locks.get(transactional_id)
        if producer is None or lock is None:
            log.warning("commit for unknown transaction %s skipped", transactional_id)
            continue
        async with lock:
            try:
                if not producer._txn_manager.is_in_transaction():
                    await producer.begin_transaction()
                await producer.send_offsets_to_transaction(offsets, group_id)
                await producer.commit_transaction()
                if start_new_transaction:
                    await producer.begin_transaction()
            except Exception as exc:
                if failures is None:
                    raise
                failures.fatal(f"commit of transaction {transactional_id} failed: {exc!r}")
        committed.update({(tp.topic, tp.partition): offset for tp, offset in offsets.items()})
    if failures is not None and committed:
        assigned = {(tp.topic, tp.partition) for tp in self.app.consumer.assignment()}
        failures.progressed(committed, assigned)
