"""Start a worker: check settings and rule, make sure topics exist, run Faust."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from app.engine import Engine
from app.kafka import admin as kadmin
from app.worker.failures import EXIT_FAILED
from app.worker.settings import WorkerSettings
from app.worker.topics import check_capacity, largest_records, topic_specs

log = logging.getLogger("seqwatch.worker")


def ensure_topics(settings: WorkerSettings, connect_timeout: float, engine: Engine) -> None:
    """Create what the worker needs and is missing; never alter existing topics.

    Input topics that do not exist yet are created with --partitions, so a worker
    started before its shippers waits on an empty topic instead of failing.
    """
    client, metadata = kadmin.connect(settings.kafka, timeout=connect_timeout)
    for spec in topic_specs(settings):
        if spec.name in metadata.topics:
            continue
        created = kadmin.create_topic(
            client, spec.name, spec.partitions, spec.replication_factor, spec.config
        )
        if created:
            log.info("created topic %s (%d partitions)", spec.name, spec.partitions)
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
    ensure_topics(settings, connect_timeout, build_engine(settings, report=False))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    discard_unclean_state(settings.data_dir, Path(app.conf.tabledir))
    log.warning(
        "seqwatch worker %s: %s -> %s (state %s, %s, ttl %d ms, lateness %d ms, web %s:%d)",
        settings.group_id,
        settings.input_pattern or ",".join(settings.input_topics),
        settings.alerts_topic,
        settings.data_dir,
        settings.processing_guarantee,
        settings.engine.ttl_ms,
        settings.engine.lateness_ms,
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
    crash = app.crash_reason or worker.crash_reason
    if code != 0 and crash is not None and app.failures is not None:
        # Faust ended the run (a service crashed): say why in /healthz after the restart,
        # as for a failure seqwatch stopped on itself.
        app.failures.save(f"the worker crashed: {type(crash).__name__}: {crash}")
        return EXIT_FAILED
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
