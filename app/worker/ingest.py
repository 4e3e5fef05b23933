"""The fast ingest stage: confluent-kafka in a thread, feeding the Faust `detect` agent.

Faust's own stream iteration tops out at a few thousand records/s per worker (docs/design.md:
measured ~11,000/s doing nothing, and exactly-once costs more), while 99% of
shipper records cannot match the rule and need no state at all. This stage reads the
shipper topics with librdkafka, decodes and prefilters each batch, and forwards only the
candidate events, re-keyed by the join key, to the repartition topic that the Faust agent
consumes; malformed records go to the dead-letter topic.

Exactly once: each batch is one Kafka transaction holding its forwarded events, its dead
letters and its input offsets (KIP-447 `send_offsets_to_transaction` with the consumer's
group metadata), so a crash anywhere either publishes the whole batch and its offsets or
none of it. The transactional id is stable per state directory, so a worker restarted
after kill -9 fences its predecessor and aborts its open transaction at once instead of
waiting for the transaction timeout.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from app.alerts_view import one_line
from app.engine import MemoryState, Reject, Source
from app.engine.event import bundle_bytes, events_of, tick_bytes
from app.engine.rule import load_rules, load_stream_rule
from app.engine.ruleset import RuleSet
from app.errors import ConfigError
from app.kafka.admin import QUIET
from app.worker.deadletter import TOMBSTONE, bounded_deadletter, deadletter_headers
from app.worker.metrics import WorkerStats
from app.worker.settings import WorkerSettings
from app.worker.stall import Stall
from app.worker.topics import deadletter_value_bytes

log = logging.getLogger("seqwatch.ingest")
POLL_S = 0.05
"""The longest a poll waits to fill its batch (BATCH_RECORDS): at a low rate each event
waits up to this before its transaction starts; at a high rate batches fill first."""
BATCH_RECORDS = 25_000
PART_RECORDS = 5000
BATCH_FORWARDS = 1000
"""A poll takes up to BATCH_RECORDS records; a transaction takes them PART_RECORDS at a
time while it has forwarded fewer than BATCH_FORWARDS events, and the next transaction
takes the rest of the poll. A transaction's fixed cost (begin, offsets, commit: 10-30 ms
here) spread over 25,000 records instead of 5,000 is what brings the worker close to the
bare consumer; the forward cap keeps a storm's transactions small, so the state stage
starts on them sooner.

No poll happens while a transaction is open: a poll can run the group's rebalance
callbacks, and a transaction must not hold records of partitions the worker no longer
owns (the first version of larger transactions polled inside one, and a fresh-clone CI
lost 12 of 160 alerts in the 16-partition kill -9 test; docs/benchmarks.md)."""


def take_more(left: int, read: int, forwarded: int) -> bool:
    """Whether the transaction takes another part of its poll, having read `read` records
    and forwarded `forwarded` events, with `left` records of the poll still unread."""
    return left > 0 and read < BATCH_RECORDS and forwarded < BATCH_FORWARDS


FETCH: dict[str, int] = {
    "fetch.max.bytes": 52_428_800,
    # Small per-partition fetches interleave the partitions finely: the state stage's
    # watermark is the minimum over inputs it has seen, and reading one partition far
    # ahead of the others (8 MiB at a time) expired starts whose connections sat in a
    # partition not read yet. A larger record still arrives whole (a fetch always returns
    # at least one batch).
    "max.partition.fetch.bytes": 262_144,
    "queued.max.messages.kbytes": 131_072,
}
"""The ingest consumer's fetch settings; the bench's baseline consumer uses the same."""

TICK_INTERVAL_S = 5.0
"""How often the ingest stage sends the wall clock to each state partition (ordered
sequences only): a quiet partition's held alerts wait at most this past the lateness."""
Candidate = tuple[int, bytes, bytes, int | None]
"""(event time, join key, repartition bytes, input record timestamp)"""
BUNDLE_EVENTS = 100
BUNDLE_BYTES = 256 * 1024
"""A bundle holds at most this many events and bytes (the repartition topic takes 1 MiB;
an event larger than this goes alone, as it did before bundles)."""
_partitioner = DefaultPartitioner()


def bundles(
    candidates: list[Candidate], partitions: int
) -> list[tuple[int, bytes, bytes, int | None]]:
    """The candidates as repartition records: per state partition (the partition Faust's
    partitioner gives the join key), in the candidates' order, packed into bundles.

    (partition, key, value, timestamp) each; a bundle's key is its first event's (same
    partition) and its timestamp the earliest of its events' input records."""
    every = list(range(partitions))
    by_partition: dict[int, list[Candidate]] = {}
    for candidate in candidates:
        partition = _partitioner(candidate[1], every, every)
        by_partition.setdefault(partition, []).append(candidate)
    records: list[tuple[int, bytes, bytes, int | None]] = []
    for partition, group in by_partition.items():
        chunk: list[Candidate] = []
        size = 0
        for candidate in group:
            if chunk and (len(chunk) >= BUNDLE_EVENTS or size + len(candidate[2]) > BUNDLE_BYTES):
                records.append(_record(partition, chunk))
                chunk, size = [], 0
            chunk.append(candidate)
            size += len(candidate[2]) + 1
        if chunk:
            records.append(_record(partition, chunk))
    return records


def _record(partition: int, chunk: list[Candidate]) -> tuple[int, bytes, bytes, int | None]:
    times = [c[3] for c in chunk if c[3]]
    value = chunk[0][2] if len(chunk) == 1 else bundle_bytes([c[2] for c in chunk])
    return partition, chunk[0][1], value, min(times) if times else None


"""A forwarded event: (event time ms, key, value, record timestamp ms)."""


def build_engine(settings: WorkerSettings, *, report: bool = True) -> RuleSet:
    """The worker's rules; the ingest process builds its own from the same settings.

    `--rule` (default: the bundled rule, unless `--rules` is given) and every rule under
    `--rules`. A rule under `--rules` that does not load is reported in one line and
    skipped; `--rule`'s must load. The alert cap is kept per rule and state partition.
    """
    rules = []
    mapping = settings.engine.load_mapping()
    if settings.rule_path is not None or not settings.rule_paths:
        rules.append(load_stream_rule(settings.rule_path, mapping))
    if settings.rule_paths:
        found = load_rules(settings.rule_paths, stream=True, mapping=mapping)
        for path, reason in found.refused if report else ():
            log.error("rule %s not loaded: %s", path, reason)
        if report and found.skipped:
            log.info("rules skipped (not EQL): %d", len(found.skipped))
        ids = {rule.rule_id for rule in rules}
        rules.extend(rule for rule in found.rules if rule.rule_id not in ids)
        if not rules:
            raise ConfigError(
                f"no EQL rule loads under --rules {' '.join(map(str, settings.rule_paths))}"
            )
    if report and len(rules) > 1:
        log.info("running %d rules", len(rules))
    return RuleSet(rules, settings.engine, mapping=mapping)


def instance_id(data_dir: Path) -> str:
    """A stable id per state directory: the same worker keeps its transactional id."""
    path = data_dir / "instance-id"
    try:
        return path.read_text().strip()
    except OSError:
        data_dir.mkdir(parents=True, exist_ok=True)
        value = uuid.uuid4().hex[:12]
        path.write_text(value + "\n")
        return value


class Ingest:
    """Consume, decode, forward, commit: one transaction per batch."""

    def __init__(self, settings: WorkerSettings, engine: RuleSet, stats: WorkerStats) -> None:
        self.settings = settings
        self.engine = engine
        self.stats = stats
        self.stopping = threading.Event()
        self.assignment: list[str] = []
        self.error: BaseException | None = None
        self.down_since: float | None = None
        self.outage_s: float | None = None  # set once an outage is over
        self.on_tick: Callable[[], None] | None = None  # called once per poll
        self.stall = Stall("ingest")
        self.deadletter_max_bytes = deadletter_value_bytes(settings)
        # An event rule's alert cap and watermark (no key state: nothing to restore).
        self.event_state = MemoryState()
        self._sent_alerts: list[dict[str, Any]] = []  # an event rule's, in this transaction
        self._refused: list[tuple[str, str]] = []  # (topic, error) of this transaction
        self._thread: threading.Thread | None = None
        kafka = settings.kafka.confluent()
        group = f"{settings.group_id}.ingest"
        self.consumer = Consumer(
            {
                **kafka,
                **QUIET,
                "group.id": group,
                # Static membership (KIP-345), as the state stage's consumer (app.py).
                "group.instance.id": f"{instance_id(settings.data_dir)}.ingest",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "session.timeout.ms": int(settings.session_timeout_s * 1000),
                "heartbeat.interval.ms": max(500, int(settings.session_timeout_s * 200)),
                "max.poll.interval.ms": 300_000,
                **FETCH,
                "topic.metadata.refresh.interval.ms": 5_000,
                "error_cb": self._on_client_error,
            }
        )
        self.producer = Producer(
            {
                **kafka,
                **QUIET,
                "transactional.id": f"{group}.{instance_id(settings.data_dir)}",
                "transaction.timeout.ms": 30_000,
                "linger.ms": 5,
                # A transaction begun right after the last one commits meets the broker
                # still writing that one's markers: AddOffsetsToTxn answers
                # CONCURRENT_TRANSACTIONS, retried after retry.backoff.ms (librdkafka: 100
                # ms; the Java client waits 20 ms in this case, KAFKA-5477). Other retries
                # still back off exponentially up to retry.backoff.max.ms (1 s).
                "retry.backoff.ms": 10,
                "compression.type": "lz4",
                "message.max.bytes": max(8_388_608, settings.engine.max_record_bytes * 2 + 65_536),
                # Keys must land where Faust (murmur2) would put them.
                "partitioner": "murmur2_random",
                "error_cb": self._on_client_error,
            }
        )

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="seqwatch-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """The loop until stopped: in the worker's thread, or as the ingest process's main."""
        try:
            self._loop()
        except BaseException as exc:
            self.error = exc
            log.error("ingest stopped: %s", exc)
        finally:
            with contextlib.suppress(KafkaException, RuntimeError):
                self.consumer.close()
            self.producer.flush(10)

    def _on_client_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN and self.down_since is None:
            self.down_since = time.monotonic()
            self.stats.outages += 1
            log.error("Kafka is unreachable: %s", err.str())
            return
        if err.fatal():
            log.error("Kafka client error (fatal): %s", err.str())
        else:
            log.warning("Kafka client: %s", err.str())

    # -- the loop --------------------------------------------------------------------

    def _loop(self) -> None:
        settings = self.settings
        self.producer.init_transactions(60)
        if settings.input_pattern:
            pattern = settings.input_pattern
            topics = [pattern if pattern.startswith("^") else f"^{pattern}"]
        else:
            topics = list(settings.input_topics)
        self.consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        log.info("ingest subscribed to %s", ", ".join(topics))
        ticks = TICK_INTERVAL_S if self.engine.is_ordered else None
        next_tick = time.monotonic()
        while not self.stopping.is_set():
            batch = self.consumer.consume(num_messages=BATCH_RECORDS, timeout=POLL_S)
            while batch:  # one transaction or more; no consume() while one is open
                batch = self._transact(batch)
            if ticks is not None and time.monotonic() >= next_tick and self.assignment:
                self._send_ticks()
                next_tick = time.monotonic() + ticks
            if self.down_since is not None:
                self._check_back()
            if self.on_tick is not None:
                self.on_tick()

    def _send_ticks(self) -> None:
        """The wall clock to every state partition, in a transaction of its own: a
        partition without events still releases what an ordered sequence holds."""
        value = tick_bytes(int(time.time() * 1000))
        self.producer.begin_transaction()
        try:
            for partition in range(self.settings.partitions):
                self.producer.produce(
                    self.settings.repartition_topic,
                    key=b"",
                    value=value,
                    partition=partition,
                    on_delivery=self._on_delivery,
                )
            self._commit()
        except KafkaException as exc:
            if not exc.args[0].txn_requires_abort():
                raise
            self.producer.abort_transaction(60)  # the next tick says the same
            log.warning("a tick was not sent (%s); the next one will be", exc.args[0].str())

    def _check_back(self) -> None:
        try:
            self.consumer.list_topics(timeout=1)
        except KafkaException:
            return
        self.outage_s = time.monotonic() - self.down_since if self.down_since else 0.0
        self.down_since = None
        log.warning("Kafka is reachable again after %.1f s", self.outage_s)

    def _transact(self, batch: list[Any]) -> list[Any]:
        """One transaction over the first records of `batch`; returns the rest (none after
        an abort: the rewind reads them again)."""
        offsets: dict[tuple[str, int], int] = {}
        candidates: list[Candidate] = []
        self._refused.clear()
        self._sent_alerts.clear()
        # An aborted batch is read again: what it did to the engine's counters and to an
        # event rule's cap must not count twice (a redo would hold back its own alerts).
        before = self.engine.checkpoint_stats(), self.event_state.checkpoint()
        counts = self.stats.checkpoint_ingest()
        self.producer.begin_transaction()
        try:
            read = 0
            while True:
                part = batch[read : read + PART_RECORDS]
                for msg in self._to_decode(part, offsets):
                    self._handle(msg, candidates)
                read += len(part)
                if not take_more(len(batch) - read, read, len(candidates)):
                    break
            # A batch holds its partitions one after another, each spanning whatever event
            # time it holds: forwarded as read, one partition can run the state stage's
            # watermark far past the events of the next (disorder beyond the allowed
            # lateness, which expires starts before their connections are read). In event
            # time order the batch adds no disorder of its own.
            candidates.sort(key=lambda c: c[0])
            for partition, key, value, timestamp in bundles(candidates, self.settings.partitions):
                self._produce(
                    self.settings.repartition_topic, key, value, timestamp, partition=partition
                )
            if offsets:
                self.producer.send_offsets_to_transaction(
                    [TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                    self.consumer.consumer_group_metadata(),
                    30,
                )
            self._commit()
        except KafkaException as exc:
            error = exc.args[0]
            if not error.txn_requires_abort():
                raise  # fatal: the ingest stops, and the worker restarts with it
            # A record the broker refused (or a transient error): nothing of the batch
            # becomes visible and its offsets stay where they were. Read it again, after
            # a pause that grows while the same failure repeats, saying why.
            reason = "; ".join(f"{t}: {e}" for t, e in self._refused[:3]) or error.str()
            self.producer.abort_transaction(60)
            # every partition of the poll: its records after this transaction are dropped
            # with it and must be read again too
            self._rewind({(m.topic(), m.partition()): 0 for m in batch if not m.error()} | offsets)
            self.engine.restore_stats(before[0])
            self.event_state.rollback(before[1])
            self.stats.restore_ingest(counts)
            self.stats.delivery_failures.update(t for t, _ in self._refused or [("?", "")])
            self.stats.ingest_stall = self.stall.status()
            self.stall.failed(reason, self.stopping)
            return []
        for alert in self._sent_alerts:  # committed: now they count
            self.stats.alerts_sent += 1
            log.warning("ALERT %s", one_line(alert))
        if self.stall.attempts:
            self.stall.cleared()
            self.stats.ingest_stall = None
        return batch[read:]

    def _commit(self) -> None:
        """commit_transaction, again while librdkafka says the error is retriable."""
        for attempt in range(5):
            try:
                self.producer.commit_transaction(60)
                return
            except KafkaException as exc:
                error = exc.args[0]
                if not error.retriable() or attempt == 4:
                    raise
                log.warning("commit of the ingest transaction failed, retrying: %s", error.str())
                time.sleep(0.5 * (attempt + 1))

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self._refused.append((msg.topic(), err.str()))

    def _to_decode(self, batch: list[Any], offsets: dict[tuple[str, int], int]) -> list[Any]:
        """The records of `batch` to decode one by one, counted in; `offsets` filled.

        A batch without errors is prefiltered as a whole (`scan_records`): the records it
        drops are only counted, which is most of the ingest stage's speed."""
        stats = self.stats
        if any(map(Message.error, batch)):
            records = []
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        log.warning("consume: %s", err.str())
                    continue
                records.append(msg)
                offsets[(msg.topic(), msg.partition())] = msg.offset() + 1
        else:
            records = batch
            for msg in batch:
                offsets[(msg.topic(), msg.partition())] = msg.offset() + 1
        stats.events_in.update(map(Message.topic, records))
        picks = self.engine.scan_records(list(map(Message.value, records)))
        if picks is None:
            return records
        stats.dropped += len(records) - len(picks)
        return [records[i] for i in picks]

    def _handle(self, msg: Any, candidates: list[Candidate]) -> None:
        stats = self.stats
        topic = msg.topic()
        raw = msg.value()
        source = Source(topic, msg.partition(), msg.offset())
        decoded = self.engine.decode(raw, source) if raw is not None else TOMBSTONE
        if decoded is None:
            stats.dropped += 1
            return
        timestamp_type, timestamp_ms = msg.timestamp()
        timestamp = timestamp_ms if timestamp_type else None
        if isinstance(decoded, Reject):
            stats.rejects[decoded.reason] += 1
            stats.deadlettered += 1
            key, value, headers = bounded_deadletter(
                msg.key(),
                raw or b"",
                deadletter_headers(
                    decoded, source, None if timestamp is None else timestamp / 1000
                ),
                self.deadletter_max_bytes,
            )
            self._produce(self.settings.deadletter_topic, key, value, timestamp, headers=headers)
            log.warning(
                "dead-lettered %s/%d@%d: %s (%s)",
                topic,
                source.partition,
                source.offset,
                decoded.reason,
                decoded.detail,
            )
            return
        engine = self.engine
        for event in events_of(decoded):  # one per rule and join key it joins under
            if engine.engine_of(event).is_event:
                # An event rule needs no state: the alert goes out in this batch's
                # transaction, with the input offsets (exactly once, like a forward).
                for alert in engine.process(event, self.event_state, scope="ingest"):
                    value = engine.alert_bytes(alert)
                    self._produce(self.settings.alerts_topic, engine.alert_key(alert), value, None)
                    self._sent_alerts.append(alert)
                continue
            stats.forwarded += 1
            candidates.append(
                (event.timestamp_ms, event.key.encode(), event.to_bytes(timestamp), timestamp)
            )

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        timestamp_ms: int | None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": self._on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        if timestamp_ms:
            kwargs["timestamp"] = timestamp_ms
        if headers:
            kwargs["headers"] = headers
        while True:
            try:
                self.producer.produce(topic, **kwargs)
                return
            except BufferError:
                self.producer.poll(0.05)

    def _rewind(self, offsets: dict[tuple[str, int], int]) -> None:
        """After an abort, read the batch again from the last committed offsets."""
        partitions = [TopicPartition(t, p) for (t, p) in offsets]
        if not partitions:
            return
        for tp in self.consumer.committed(partitions, timeout=30):
            self.consumer.seek(
                TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else -2)
            )

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.assignment = sorted(f"{p.topic}:{p.partition}" for p in partitions)
        log.info("ingest assigned %d partitions", len(partitions))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self.assignment = []
        log.info("ingest revoked %d partitions", len(partitions))


RESTART_AFTER_OUTAGE_S = 3.0


class RestartNeeded(RuntimeError):
    """The worker must restart to recover (see app.worker.supervise)."""


class IngestRunner:
    """Glue for the Faust app: start with the worker, stop with it, crash it on failure.

    `ingest` is an `Ingest` (a thread of this process) or an `IngestProcess` (a child
    process, which also has `sync()` to bring its counters over).
    """

    def __init__(self, ingest: Any) -> None:
        self.ingest = ingest

    async def watch(self, app: Any) -> None:
        import asyncio

        self.ingest.start()
        try:
            sync = getattr(self.ingest, "sync", None)
            while not app.should_stop:
                await asyncio.sleep(0.2)
                if sync is not None:
                    sync()
                outage = self.ingest.outage_s
                if outage is not None and outage >= RESTART_AFTER_OUTAGE_S:
                    # Faust's consumer does not rejoin its group after such an outage;
                    # a fresh process does (the supervisor restarts it).
                    await app.crash(
                        RestartNeeded(f"Kafka was unreachable for {outage:.0f} s: restarting")
                    )
                    return
                self.ingest.outage_s = None
                if not self.ingest.alive:
                    if sync is not None:
                        sync()  # the child's last words
                    error = self.ingest.error or RuntimeError("ingest stage ended")
                    await app.crash(error)
                    return
        finally:
            started = time.monotonic()
            await asyncio.get_running_loop().run_in_executor(None, self.ingest.stop)
            log.info("ingest stopped in %.1f s", time.monotonic() - started)
