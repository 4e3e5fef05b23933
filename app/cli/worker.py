"""`seqwatch worker`: run one detection worker (Faust)."""

from __future__ import annotations

import sys
from typing import Any

import click

from app.cli.options import kafka_options, pop_kafka_settings, settings_from, settings_options
from app.kafka.settings import KafkaSettings
from app.worker.settings import WorkerSettings


@click.command()
@kafka_options
@settings_options(WorkerSettings)
@click.option(
    "--restart/--no-restart",
    envvar="SEQWATCH_RESTART",
    default=True,
    show_default=True,
    help="Restart the worker process after a failure.",
)
def worker(kafka: KafkaSettings, restart: bool, **options: Any) -> None:
    """Run a detection worker: shipper topics in, alerts out, state in RocksDB.

    The worker runs in a child process that is restarted after a failure (with
    backoff); --no-restart runs it in this process, for a supervisor of your own.
    """
    from app.worker.run import run_worker
    from app.worker.supervise import supervise

    settings = settings_from_options(kafka, options)
    if not restart:
        sys.exit(run_worker(settings))
    sys.exit(supervise(lambda: run_worker(settings), data_dir=settings.data_dir))


def settings_from_environment() -> WorkerSettings:
    """Settings from SEQWATCH_* variables and defaults alone (for `faust -A app`)."""
    ctx = worker.make_context("worker", [])
    params = dict(ctx.params)
    params.pop("restart")
    return settings_from_options(pop_kafka_settings(params), params)


def settings_from_options(kafka: KafkaSettings, options: dict[str, Any]) -> WorkerSettings:
    """Turn the command's options into validated WorkerSettings."""
    settings: WorkerSettings = settings_from(WorkerSettings, dict(options), kafka=kafka)
    return settings.validate()
