"""Start a worker: check settings and rule, make sure topics exist, run Faust."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from app.engine import Engine
from app.kafka import admin as kadmin
from app.worker.deadletter import TOPIC_MAX_MESSAGE_BYTES as DLQ_MESSAGE_BYTES
from app.worker.settings import WorkerSettings

log = logging.getLogger("seqwatch.worker")


INTERNAL_MAX_MESSAGE_BYTES = 1_048_576
"""`max.message.bytes` of the repartition and changelog topics: several times the largest
value the engine writes to either (see `Limits`), set explicitly rather than inherited
from whatever the broker's default is."""


def topic_configs(settings: WorkerSettings) -> dict[str, tuple[int, dict[str, str]]]:
    """Partitions and configs of every topic the worker creates when it is missing."""
    internal = str(INTERNAL_MAX_MESSAGE_BYTES)
    wanted: dict[str, tuple[int, dict[str, str]]] = {}
    if not settings.input_pattern:
        for topic in settings.input_topics:
            wanted[topic] = (settings.partitions, {"max.message.bytes": str(DLQ_MESSAGE_BYTES)})
    wanted[settings.alerts_topic] = (settings.partitions, {"max.message.bytes": internal})
    wanted[settings.deadletter_topic] = (1, {"max.message.bytes": str(DLQ_MESSAGE_BYTES)})
    wanted[settings.repartition_topic] = (
        settings.partitions,
        {"cleanup.policy": "delete", "retention.ms": "604800000", "max.message.bytes": internal},
    )
    wanted[settings.changelog_topic] = (
        settings.partitions,
        {"cleanup.policy": "compact", "max.message.bytes": internal},
    )
    return wanted


def largest_records(settings: WorkerSettings, engine: Engine) -> dict[str, int]:
    """The largest record value the worker writes to each of its output topics."""
    return {
        settings.alerts_topic: engine.max_alert_bytes,
        settings.deadletter_topic: DLQ_MESSAGE_BYTES - 32_768,
        settings.repartition_topic: engine.max_event_bytes_out,
        settings.changelog_topic: engine.max_state_bytes,
    }


def check_capacity(client: Any, largest: dict[str, int]) -> list[str]:
    """One line per output topic whose `max.message.bytes` is below what may be sent there.

    Not fatal: such a record is refused when (if ever) it is sent, and the worker then
    stops and says so (app.worker.failures); this says it at start, before any is lost.
    """
    problems = []
    for name, entries in kadmin.describe_configs(client, list(largest)).items():
        entry = entries.get("max.message.bytes")
        limit = int(entry.value) if entry is not None and entry.value else None
        if limit is not None and limit < largest[name]:
            problems.append(
                f"topic {name} takes records of at most {limit} bytes (max.message.bytes) but"
                f" seqwatch may write up to {largest[name]} bytes there: raise it, or a record"
                " that large will stop the worker until it is raised"
            )
    return problems


def ensure_topics(settings: WorkerSettings, connect_timeout: float, engine: Engine) -> None:
    """Create what the worker needs and is missing; never alter existing topics.

    Input topics that do not exist yet are created with --partitions, so a worker
    started before its shippers waits on an empty topic instead of failing.
    """
    client, metadata = kadmin.connect(settings.kafka, timeout=connect_timeout)
    for name, (partitions, config) in topic_configs(settings).items():
        if name in metadata.topics:
            continue
        if kadmin.create_topic(client, name, partitions, 1, config):
            log.info("created topic %s (%d partitions)", name, partitions)
    for problem in check_capacity(client, largest_records(settings, engine)):
        log.warning("%s", problem)
    for name in (settings.repartition_topic, settings.changelog_topic):
        have = kadmin.wait_for_topic(client, name)
        if have != settings.partitions:
            from app.errors import ConfigError

            raise ConfigError(
                f"topic {name} has {have} partitions but --partitions is {settings.partitions}: "
                "state is partitioned like it, so use the same count (or a new --group-id)"
            )


def run_worker(settings: WorkerSettings, connect_timeout: float = 30.0) -> int:
    import faust

    from app.worker.app import build_app
    from app.worker.ingest import build_engine

    settings.validate()
    app = build_app(settings)  # loads the rule: a bad rule never starts a worker
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    ensure_topics(settings, connect_timeout, build_engine(settings))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    discard_unclean_state(settings.data_dir, Path(app.conf.tabledir))
    log.warning(
        "seqwatch worker %s: %s -> %s (state %s, %s, ttl %d ms, lateness %d ms, web %s:%d)",
        settings.group_id,
        settings.input_pattern or ",".join(settings.input_topics),
        settings.alerts_topic,
        settings.data_dir,
        settings.processing_guarantee,
        settings.ttl_ms,
        settings.lateness_ms,
        settings.web_host,
        settings.web_port,
    )
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = int(exc.code or 0)
    if code == 0:
        (settings.data_dir / RUNNING).unlink(missing_ok=True)
    return code


RUNNING = "RUNNING"


def discard_unclean_state(data_dir: Path, tables: Path) -> None:
    """After a crash, rebuild the state from the changelog instead of trusting RocksDB.

    RocksDB is written as events are processed, before their transaction commits; after
    kill -9 it can hold effects of aborted transactions (a sequence marked complete
    whose alert was never committed), and Faust would resume from it and lose that
    alert. The changelog, read with read_committed, holds exactly the committed state
    (Kafka Streams' rule for exactly-once: no clean shutdown, no local state). It is
    compacted and bounded by the TTL, so the restore is short.
    """
    marker = data_dir / RUNNING
    if marker.exists() and tables.exists():
        log.warning(
            "the previous run in %s did not stop cleanly (pid %s): local state discarded, "
            "restoring it from the changelog",
            data_dir,
            marker.read_text().strip() or "?",
        )
        shutil.rmtree(tables)
    marker.write_text(f"{os.getpid()}\n")
