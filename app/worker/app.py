"""The Faust application: two agents around one detection engine.

    input topics --ingest--> <group>-events-by-entity --detect--> alerts topic
                     └──> dead-letter topic        (RocksDB table `sequences`,
                                                     changelog <group>-sequences-changelog)

`ingest` decodes and prefilters every record (stateless, any partition) and re-keys
the few candidate events by their join key, so that all events of one process meet
on one partition of the repartition topic. `detect` owns the state of its partitions
in a RocksDB-backed table; every state change goes through the table so that it
reaches the changelog, which is what lets a restarted or rebalanced worker resume.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.alerts_view import one_line
from app.engine import Source
from app.worker.batch import BatchResult, run_batch
from app.worker.deadletter import deadletter_headers
from app.worker.failures import Failures
from app.worker.faust_ext import versions
from app.worker.faust_ext.app import SeqwatchApp, reset_current_event, set_current_event
from app.worker.faust_ext.recovery import TableManager
from app.worker.faust_ext.table import ChangelogTable
from app.worker.ingest import Ingest, IngestRunner, build_engine, instance_id
from app.worker.ingest_process import IngestProcess
from app.worker.metrics import WorkerStats, build_registry
from app.worker.settings import WorkerSettings
from app.worker.state import TableState

log = logging.getLogger("seqwatch.worker")
DETECT_BATCH = 20
"""Most events the detect agent handles in one batch (one lock, one flush)."""
ALERT_COMMIT_GAP_S = 0.05
"""Least time between two commits that a batch with alerts starts itself."""
DETECT_WITHIN = 0.02
"""Seconds the detect agent waits to fill a batch: the latency a quiet stream pays."""


def build_app(settings: WorkerSettings) -> SeqwatchApp:
    """A configured Faust app; nothing connects until a faust.Worker runs it."""
    versions.check()
    engine = build_engine(settings)
    failures = Failures(settings.data_dir)
    instance = instance_id(settings.data_dir)
    app = SeqwatchApp(
        settings.group_id,
        failures=failures,
        # seqwatch's transport (app.worker.faust_ext.transport), by its entry point
        broker=settings.kafka.faust_broker(scheme="seqwatch"),
        TableManager=TableManager,
        Table=ChangelogTable,
        broker_credentials=settings.kafka.faust_credentials(),
        store="rocksdb://",
        datadir=str(settings.data_dir),
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=settings.partitions,
        # seqwatch creates every topic itself (run.ensure_topics) before Faust looks.
        topic_replication_factor=max(1, settings.replication_factor or 1),
        topic_allow_declare=True,
        table_standby_replicas=settings.standby_replicas,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        # Static membership (KIP-345): a worker restarted on its --data-dir takes its
        # partitions back at once instead of after the dead member's session timeout.
        consumer_group_instance_id=f"{instance}.state",
        # Faust's assignor puts this URL in each assignment and asserts it is its own; a
        # static member rejoining gets its previous assignment back, so it must not
        # change with the web port (seqwatch does not route between workers by URL).
        canonical_url=f"http://seqwatch-{instance}.invalid",
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 5),
        broker_commit_interval=settings.commit_interval_s,
        consumer_max_fetch_size=max(4 * 1024 * 1024, settings.engine.max_record_bytes * 2),
        # A batch's changelog writes leave as whole record batches (faust_ext.table): up to
        # this many bytes each, well within every topic's max.message.bytes (1 MiB at least).
        producer_max_batch_size=512 * 1024,
        producer_max_request_size=max(
            1024 * 1024, settings.engine.max_record_bytes * 2 + 65536, engine.max_state_bytes * 2
        ),
        # Faust compares the local offset with the changelog's high water, which reads
        # -1 while another worker's transaction is open on it, and then refuses to start.
        # Local state is discarded after any unclean stop (run.discard_unclean_state).
        recovery_consistency_check=False,
        web_enabled=True,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        web_stats_enabled=False,
        web_tables_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
    )

    by_entity = app.topic(settings.repartition_topic, partitions=settings.partitions)
    deadletter = app.topic(settings.deadletter_topic)
    table = app.Table(
        settings.table_name,
        default=None,
        partitions=settings.partitions,
        key_type=str,
        value_type=bytes,  # the "raw" serializer: TableState writes orjson bytes
        options={
            "driver": "rocksdict",
            # RocksDB's default is a 2 GiB block cache per partition database.
            "block_cache_size": settings.block_cache_mb * 1024 * 1024,
            "block_cache_compressed_size": settings.block_cache_mb * 1024 * 1024 // 4,
            "write_buffer_size": 8 * 1024 * 1024,
        },
    )
    state = TableState(table)
    stats = WorkerStats()
    registry, latency = build_registry(stats, engine, lambda: _table_size(table), failures.status)

    stage = (
        IngestProcess(settings, stats)
        if settings.ingest == "confluent"
        else Ingest(settings, engine, stats)
    )
    runner = IngestRunner(stage)

    @app.task
    async def ingest_stage() -> None:
        await runner.watch(app)

    @app.agent(by_entity, name="detect")
    async def detect(stream: faust.StreamT) -> None:
        # Batches: the events that arrived within DETECT_WITHIN (or DETECT_BATCH of them),
        # handled partition by partition, so that each partition's state changes go to its
        # own transaction and each key reaches the changelog once per batch.
        last_commit = 0.0
        async for batch in stream.take_events(DETECT_BATCH, within=DETECT_WITHIN):
            alerted = False
            async with app.event_lock:
                done = [await _detect_partition(events) for events in _by_partition(batch)]
                # Every send of the batch delivered before any event is acked (and so
                # before the commit that waits for this lock); one wait for all of them.
                for sent, deliveries in done:
                    try:
                        await asyncio.gather(*deliveries)
                    except Exception as exc:
                        first = sent.messages[0]
                        failures.fatal(
                            f"a send of the state stage was refused ({exc!r}) while handling "
                            f"{first.topic}[{first.partition}] from offset {first.offset}",
                            first.topic,
                            first.partition,
                            first.offset,
                        )
                for sent, _ in done:
                    _report(sent)
                    alerted = alerted or bool(sent.alerts)
                # Acked here, with every effect delivered, rather than when take_events
                # resumes: a commit right after this block then holds the whole batch.
                for event in batch:
                    await stream.ack(event)
            # An alert is visible only once its transaction commits: commit now rather
            # than at the next commit interval (up to 100 ms later), at most every
            # ALERT_COMMIT_GAP_S, so that a storm of alerts does not commit per batch.
            if alerted and time.monotonic() - last_commit >= ALERT_COMMIT_GAP_S:
                last_commit = time.monotonic()
                if not await app.consumer.commit():  # False: it waited for a running one
                    await app.consumer.commit()

    async def _detect_partition(events: list[Any]) -> tuple[BatchResult, list[Any]]:
        """Run one partition's events and send their effects; returns the deliveries."""
        messages = [e.message for e in events]
        scope = str(messages[0].partition)
        # Table reads and writes, changelog writes and sends follow the current event:
        # make it one of this partition's (Faust's take_events does not set it here).
        token = set_current_event(events[-1])
        try:
            batch = run_batch(engine, state, messages, scope)
            # All state changes of the batch, then their changelog writes, then the alerts
            # and dead letters: all in this partition's transaction.
            batch.cache.flush()
            deliveries = await app.producer.buffer.send_now()
            deliveries += await table.send_changelog_batch()
            if batch.alerts:  # as whole record batches too, keyed by process.entity_id
                records = [
                    (engine.alert_key(alert), engine.alert_bytes(alert))
                    for _, _, alert, _ in batch.alerts
                ]
                transactions = app.consumer.transactions if app.in_transaction else None
                sent = await app.producer.send_keyed(settings.alerts_topic, records, transactions)
                deliveries += [delivery for delivery, _ in sent]
            for message, value, reject in batch.poisoned:
                deliveries.append(
                    await deadletter.send(
                        key=message.key,
                        value=value,
                        headers=deadletter_headers(
                            reject,
                            Source(message.topic, message.partition, message.offset),
                            message.timestamp,
                        ),
                    )
                )
            return batch, deliveries
        finally:
            reset_current_event(token)

    def _report(batch: BatchResult) -> None:
        """Counters and log lines of a batch whose effects Kafka has accepted."""
        scope = str(batch.messages[0].partition)
        stats.sequenced += batch.sequenced
        if batch.watermark_ms is not None:
            stats.watermark_ms[scope] = max(stats.watermark_ms.get(scope, 0), batch.watermark_ms)
        for message, _, reject in batch.poisoned:
            stats.state_rejects[reject.reason] += 1
            log.error(
                "dead-lettered %s/%d@%d: %s (%s)",
                message.topic,
                message.partition,
                message.offset,
                reject.reason,
                reject.detail,
            )
        for _, _, alert, record_s in batch.alerts:
            stats.alerts_sent += 1
            latency.observe(max(0.0, time.time() - record_s))
            log.warning("ALERT %s", one_line(alert))

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        """200 while the worker makes progress; 503 with the reason while it cannot."""
        assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment())
        failure = failures.status()
        status = "failing" if failure else "stalled" if stats.ingest_stall else "ok"
        return web.json(
            {
                "status": status,
                "failure": failure,
                "stalled": stats.ingest_stall,
                "group_id": settings.group_id,
                "rebalancing": bool(app.rebalancing),
                "recovering": not app.tables.recovery.completed.is_set()
                if hasattr(app.tables.recovery, "completed")
                else None,
                "assigned": assigned,
                "ingest": {"alive": runner.ingest.alive, "assigned": runner.ingest.assignment},
                "uptime_s": round(time.time() - stats.started, 1),
            },
            status=200 if status == "ok" else 503,
        )

    @app.timer(interval=30.0)
    async def report() -> None:
        log.info(
            "in=%d forwarded=%d dropped=%d deadlettered=%d alerts=%d state=%d",
            sum(stats.events_in.values()),
            stats.forwarded,
            stats.dropped,
            stats.deadlettered,
            stats.alerts_sent,
            _table_size(table),
        )

    return app


def _by_partition(batch: Any) -> list[list[Any]]:
    """The batch's events grouped by partition, each group in arrival (offset) order."""
    groups: dict[int, list[Any]] = {}
    for event in batch:
        groups.setdefault(event.message.partition, []).append(event)
    return list(groups.values())


def _table_size(table: Any) -> int:
    try:
        return len(table)
    except Exception:
        return 0
