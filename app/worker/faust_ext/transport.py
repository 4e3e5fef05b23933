"""The `seqwatch://` transport: Faust's aiokafka transport with seqwatch's fixes.

Each class overrides the few methods its fix needs and calls the upstream one for the
rest. The defects (F1..F15) are described in docs/faust-defects.md; the canary test of
each is in tests/unit/test_faust_canaries.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.protocol.offset import OffsetRequest
from aiokafka.structs import TopicPartition
from faust.exceptions import ProducerSendError
from faust.streams import current_event
from faust.transport import consumer as faust_consumer
from faust.transport import producer as faust_producer
from faust.transport.drivers import aiokafka as driver
from mode import Service

log = logging.getLogger("seqwatch.worker")

_PARTITIONER = DefaultPartitioner()
FETCH_MAX_WAIT_MS = 100
"""The worker consumer's fetch wait (Faust hard-codes 1,500 ms, see F8)."""
WATCH_COORDINATION_S = 1.0
"""How often the consumer checks that it still takes part in its group."""
REVOKE_BOUND_S = 30.0
"""Longest a worker may take to give up its partitions (the commit before it included).
The whole group waits for it (up to the max poll interval, 1,000 s in Faust), and a worker
stuck there detects nothing: past this it ends, and its restart redoes the work."""


def revoke_overdue(since: float | None, now: float, bound: float = REVOKE_BOUND_S) -> str | None:
    """Why a revocation that began at `since` (monotonic s; None: none running) is stuck."""
    if since is None or now - since <= bound:
        return None
    return f"giving up its partitions has not finished in {now - since:.0f} s"


class RecordsSkipped(RuntimeError):
    """Records of a partition never reached the agent: restart to read them again."""


class TransactionManager(faust_consumer.TransactionManager):
    """F1: a send joins the transaction of the event being processed.

    Faust picks the transactional producer of a send from its *destination* partition,
    so an event re-keyed to partition q joined q's transaction (committed only when q's
    own offsets advance: alerts stayed invisible), and a send to a topic the app does not
    consume went out outside any transaction. Kafka Streams binds a task's outputs to the
    transaction of its *input* partition; so does this.
    """

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Any:
        tid = self.current_transactional_id()
        if tid is None:
            return await super().send(
                topic, key, value, partition, timestamp, headers, transactional_id=transactional_id
            )
        destination = self.consumer.key_partition(topic, key, partition)
        return await self.producer.send(
            topic, key, value, destination, timestamp, headers, transactional_id=tid
        )

    def current_transactional_id(self) -> str | None:
        """The transaction of the input partition of the event being processed."""
        event = current_event()
        if event is None:
            return None
        source = event.message.tp
        group = self.app.assignor.group_for_topic(source.topic)
        return f"{self.app.conf.id}-{group}-{source.partition}"


class ConsumerThread(driver.AIOKafkaConsumerThread):
    async def _highwaters(self, partitions: list[Any]) -> Any:
        """F5: end offsets from the broker (the last stable offset under read_committed).

        Faust takes the end of a changelog partition to restore up to from a fetch cache
        that is -1 before the first fetch: a worker taking over a partition restored
        nothing and ran on empty state.
        """
        return await self._ensure_consumer().end_offsets(partitions)

    @Service.task
    async def _watch_coordination(self) -> None:
        """Fail loudly when the consumer stops taking part in its group.

        aiokafka runs joins, assignments and heartbeats in one task. When it dies (Faust's
        assignor raising on an assignment it cannot read, say), the error surfaces only at
        the next fetch, and a worker that has no assignment yet never fetches: it hung,
        never ready, with nothing in its log or /healthz. Faust's own timers cannot watch
        for this: they start only once a first recovery has completed.
        """
        waiting: BaseException | None = None
        while not self.should_stop:
            await self.sleep(WATCH_COORDINATION_S)
            reason = self.coordination_failure() or revoke_overdue(
                getattr(self.consumer, "revoking_since", None), time.monotonic()
            )
            # An error the coordination task hands to the fetch and then waits on: a fetch
            # takes it within a poll; one that waits a whole check has no fetch to take it.
            pending = self._coordinator_attribute("_pending_exception")
            if reason is None and pending is not None and pending is waiting:
                reason = f"{type(pending).__name__}: {pending}, never read by a fetch"
            waiting = pending
            failures = self.app.failures
            if reason is not None and not self.should_stop and failures is not None:
                failures.fatal(
                    f"the state stage's consumer stopped coordinating with group "
                    f"{self.app.conf.id} ({reason}): it would get no partitions and no "
                    "rebalances, and detect nothing",
                    clears="ready",
                )

    def coordination_failure(self) -> str | None:
        """Why the client's group coordination task ended, if it ended without a close."""
        task = self._coordinator_attribute("_coordination_task")
        closing = self._coordinator_attribute("_closing")
        if task is None or not task.done() or closing is None or closing.done():
            return None
        if task.cancelled():
            return "the task was cancelled"
        exc = task.exception()
        return "the task returned" if exc is None else f"{type(exc).__name__}: {exc}"

    async def stable_ends(self, partitions: list[Any]) -> dict[Any, int | None]:
        """F10: each partition's end offset if no transaction is open on it, else None.

        The last stable offset (read_committed) equals the high watermark only when no
        transaction on the partition is still open or waiting for its markers; below it,
        then, is everything that will ever be committed there by the writers fenced so
        far. A restore may end there, and only there.
        """
        return await self.call_thread(self._stable_ends, partitions)

    async def _stable_ends(self, partitions: list[Any]) -> dict[Any, int | None]:
        return await stable_ends(self._ensure_consumer(), partitions)

    def _coordinator_attribute(self, name: str) -> Any:
        """An attribute of aiokafka's group coordinator (canary: test_faust_canaries)."""
        return getattr(getattr(self._consumer, "_coordinator", None), name, None)

    def _create_worker_consumer(self, transport: Any) -> Any:
        """F8: Faust hard-codes fetch_max_wait_ms=1500, which a read_committed fetch that
        finds nothing stable yet waits out in full (p99 detection latency past 1 s).
        aiokafka's fetcher reads the consumer's setting when it starts."""
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class Consumer(driver.Consumer):
    revoking_since: float | None = None
    """When the running revocation began (monotonic s), for the group watch."""

    def __post_init__(self) -> None:
        super().__post_init__()
        # The offset of the last record the client returned, per partition (F10): with
        # `_read_offset` (the last one handed on) it tells whether a record fetched is
        # still on its way through Faust.
        self.returned: dict[Any, int] = {}

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def stable_ends(self, partitions: list[Any]) -> dict[Any, int | None]:
        thread = self._thread
        assert isinstance(thread, ConsumerThread)
        return await thread.stable_ends(partitions)

    async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
        records = await super()._getmany(active_partitions, timeout)
        returned = self.returned
        for tp, messages in records.items():
            if messages:
                returned[tp] = messages[-1].offset
        return records

    async def force_commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        """F2: no commit lands in the middle of a batch.

        A transaction holding part of a batch's effects (its state changes, not yet its
        alert) committed while the batch's offsets did not; after a crash the batch ran
        again against state that marked it done and the alert was lost. The offsets are
        read under the lock too: an event finished after they were read would otherwise
        have its effects in this transaction and its offset in the next.
        """
        async with self.app.event_lock:
            return bool(await super().force_commit(topics, start_new_transaction))

    async def on_partitions_revoked(self, revoked: Any) -> None:
        """F6: commit before partitions are revoked, as Kafka Streams does.

        Faust forgets the acked offsets of revoked partitions but leaves their transaction
        open; a worker that got a partition back restored the committed state, read the
        events again and committed both runs (alerts twice). A failed commit here ends the
        process (Producer.commit_transactions) instead of letting the rebalance go on
        with RocksDB ahead of the changelog.
        """
        self.revoking_since = time.monotonic()  # watched: a stuck revoke stalls the group
        try:
            if not await self.commit():  # False also when it waited for a running commit
                await self.commit()
            for tp in revoked:  # as Faust forgets their read offsets (F10)
                self.returned.pop(tp, None)
            await super().on_partitions_revoked(revoked)
        finally:
            self.revoking_since = None

    def _new_offset(self, tp: Any) -> int | None:
        """F4's safety net: offsets that never reached the agent restart the worker.

        Faust refuses to commit past a hole in the acked offsets; if the hole is not a
        known gap (a transaction marker) the records were lost by the consumer, and
        only reading the partition again from its committed offset recovers them.
        """
        offset: int | None = super()._new_offset(tp)
        if offset is None:
            hole = skipped(self._acked.get(tp), self._committed_offset.get(tp))
            if hole is not None:
                self._restart(tp, hole)
        return offset

    def _restart(self, tp: Any, hole: tuple[int, int]) -> None:
        app = self.app
        if app.restarting is not None:
            return  # already on its way down
        first, last = hole
        message = (
            f"offsets {first}-{last} of {tp.topic}[{tp.partition}] never reached the detect "
            "agent (lost by the Faust consumer); restarting to read them again from the "
            "committed offset"
        )
        log.error(message)
        app.restarting = asyncio.ensure_future(app.crash(RecordsSkipped(message)))


def skipped(acked: list[int] | None, committed: int | None) -> tuple[int, int] | None:
    """The offsets [first, last] that were never acked below the lowest acked one.

    Mirrors the condition under which Faust's `_new_offset` returns None with acked
    offsets waiting: one missing offset at the head is a transaction marker and fine.
    """
    if not acked or not committed:
        return None
    lowest = min(acked)
    if lowest - committed > 1:
        return committed, lowest - 1
    return None


async def stable_ends(consumer: Any, partitions: list[Any]) -> dict[Any, int | None]:
    """`ConsumerThread.stable_ends` on an aiokafka consumer with isolation read_committed."""
    stable = await consumer.end_offsets(list(partitions))  # read_committed: the LSO
    client = consumer._client
    by_node: dict[int, dict[str, list[tuple[int, int]]]] = {}
    for tp in partitions:
        node = client.cluster.leader_for_partition(tp)
        if node is None or node < 0:
            return dict.fromkeys(partitions)
        by_node.setdefault(node, {}).setdefault(tp.topic, []).append((tp.partition, -1))
    high: dict[Any, int] = {}
    for node, topics in by_node.items():
        # isolation level 0 (read_uncommitted): the high watermark
        response = await client.send(node, OffsetRequest(-1, 0, list(topics.items())))
        for topic, parts in response.topics:
            for partition, error, *info in parts:
                if error == 0:
                    high[TopicPartition(topic, partition)] = info[-1]
    return {
        tp: stable[tp] if tp in high and high[tp] == stable.get(tp) else None for tp in partitions
    }


class ChangelogBuffer(faust_producer.ProducerBuffer):
    """F3: the agent sends its batch's changelog writes itself, and gets their futures.

    Faust queues table changelog writes here for a background task. Waiting until the
    queue looks empty is not enough: that task may hold a write (behind a metadata wait
    or the transaction lock) when the batch is acked and a commit runs; the write then
    lands in the next transaction and a kill -9 in between loses it. `send_now` waits out
    the task, sends what is queued in order from the agent's own task, and returns the
    delivery future of every write since the last call, so that a refused write fails
    the batch instead of vanishing into a log line.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._taken: list[Any] = []

    async def _send_pending(self, fut: Any) -> None:
        self._in_flight += 1
        self._idle.clear()
        self._taken.append(fut)
        try:
            await super()._send_pending(fut)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def send_now(self) -> list[Any]:
        while self._in_flight:
            await self._idle.wait()
        pending = self.pending
        writes = [pending.get_nowait() for _ in range(pending.qsize())]
        for fut in writes:
            await super()._send_pending(fut)
        taken, self._taken = self._taken, []
        return taken + writes


class Producer(driver.Producer):
    def __init__(self, transport: Any, loop: Any = None, **kwargs: Any) -> None:
        super().__init__(transport, loop=loop, **kwargs)
        self.buffer = ChangelogBuffer(loop=self.loop, beacon=self.beacon)
        self.buffer.app = self.app

    async def send_records(
        self,
        topic: str,
        partition: int,
        records: list[tuple[bytes, bytes | None]],
        transactions: TransactionManager | None,
    ) -> list[tuple[Any, int]]:
        """Send (key, value) records to one partition as whole record batches, in the
        transaction of the current event when `transactions` is given (table.py).

        (delivery future of a batch (its base offset), records in it) for each batch."""
        tid = transactions.current_transactional_id() if transactions is not None else None
        if tid is None:
            return await self._send_records(self._ensure_producer(), topic, partition, records)
        producer = self._transaction_producers.get(tid)
        if producer is None:
            raise ProducerSendError(f"no transactional producer for {tid}")
        async with self._trn_locks[tid]:
            return await self._send_records(producer, topic, partition, records)

    async def send_keyed(
        self,
        topic: str,
        records: list[tuple[bytes, bytes | None]],
        transactions: TransactionManager | None,
    ) -> list[tuple[Any, int]]:
        """`send_records` to the partitions the keys hash to (murmur2, as a keyed send)."""
        tid = transactions.current_transactional_id() if transactions is not None else None
        producer = self._ensure_producer() if tid is None else self._transaction_producers[tid]
        partitions = sorted(await producer.partitions_for(topic))
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for key, value in records:
            partition = _PARTITIONER(key, partitions, partitions)
            by_partition.setdefault(partition, []).append((key, value))
        sent: list[tuple[Any, int]] = []
        for partition, group in by_partition.items():
            sent += await self.send_records(topic, partition, group, transactions)
        return sent

    @staticmethod
    async def _send_records(
        producer: Any, topic: str, partition: int, records: list[tuple[bytes, bytes | None]]
    ) -> list[tuple[Any, int]]:
        sent: list[tuple[Any, int]] = []
        batch, count = producer.create_batch(), 0
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                sent.append((await producer.send_batch(batch, topic, partition=partition), count))
                batch, count = producer.create_batch(), 0
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ProducerSendError(f"a record to {topic}[{partition}] fits no batch")
            count += 1
        if count:
            sent.append((await producer.send_batch(batch, topic, partition=partition), count))
        return sent

    async def begin_transaction(self, transactional_id: str) -> None:
        """F6's companion: a producer already in a transaction is left in it (Faust's
        `maybe_begin_transaction` means that, and logged an error after a revocation
        commit started the next transaction)."""
        producer = self._transaction_producers.get(transactional_id)
        if producer is not None and producer._txn_manager.is_in_transaction():
            return
        await super().begin_transaction(transactional_id)

    async def stop_transaction(self, transactional_id: str) -> None:
        """Faust's, under the transaction's lock: a revoked partition's producer stops
        only between two commits.

        Faust stopped it whenever a rebalance assigned the partition away, also while a
        commit of the worker's commit timer was sending its offsets; that commit waited
        on a stopped producer forever, and with it every later commit and the next
        revocation: the worker hung in the rebalance, its whole group with it (seen in
        the load test of group changes: "Revoking previously assigned partitions", then
        only failed heartbeats, until the group watch's revoke bound ended it).
        """
        lock = self._trn_locks.get(transactional_id)
        if lock is None:
            await super().stop_transaction(transactional_id)
            return
        async with lock:
            await super().stop_transaction(transactional_id)

    async def commit_transactions(
        self,
        tid_to_offset_map: Any,
        group_id: str,
        start_new_transaction: bool = True,
    ) -> None:
        """F7: Faust's commit, tolerating producers between transactions (its double
        commit at shutdown raised `IllegalOperation` and hung SIGTERM), failing loudly,
        and committing the partitions' transactions concurrently.

        Any failure to commit ends the worker (app.worker.failures): the transaction's
        outcome is then unknown, and only a restart that fences it and rebuilds state from
        the changelog is sure to agree with what Kafka holds. A commit for a transactional
        id this worker has no producer for has nothing in flight to commit (its partition
        was never assigned here, or its producer was closed with its partition): skipped.
        """
        failures = self.app.failures
        committed: dict[tuple[str, int], int] = {}

        async def commit(transactional_id: str, offsets: Any) -> None:
            producer = self._transaction_producers.get(transactional_id)
            lock = self._trn_locks.get(transactional_id)
            if producer is None or lock is None:
                log.warning("commit for unknown transaction %s skipped", transactional_id)
                return
            async with lock:
                if self._transaction_producers.get(transactional_id) is not producer:
                    # stopped with its partition while this waited (stop_transaction):
                    # its transaction is the next owner's to fence and redo
                    log.info("commit of %s skipped: its partition moved", transactional_id)
                    return
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
            committed.update({(tp.topic, tp.partition): o for tp, o in offsets.items()})

        # Each partition's transaction is its own producer's: all of them at once, so a
        # commit costs one partition's round trips, not one per partition in turn.
        await asyncio.gather(*(commit(t, o) for t, o in tid_to_offset_map.items()))
        if failures is not None and committed:
            assigned = {(tp.topic, tp.partition) for tp in self.app.consumer.assignment()}
            failures.progressed(committed, assigned)


class Transport(driver.Transport):
    """Registered as `seqwatch` in the `faust.transports` entry point group."""

    Consumer = Consumer
    Producer = Producer
    TransactionManager = TransactionManager
