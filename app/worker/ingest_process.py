"""The ingest stage in a process of its own, so that it does not share the GIL with Faust.

In one process the ingest thread and the Faust agent take turns on one core (the worker
measured 0.8 cores busy while the machine had two). Here the ingest runs in a spawned
child: it reads, decodes, prefilters and forwards on one core while the state stage runs on
another. Nothing but counters crosses between them: the forwarded events travel through
Kafka as before, in the child's transactions. The child reports its counters, its
assignment and any outage a few times per second over a pipe; the parent copies them into
its own `WorkerStats`, so /metrics and /healthz read as they did.

The child dies with its parent (PR_SET_PDEATHSIG, like the worker under its supervisor):
a `kill -9` of the worker leaves no ingest behind, and the next one fences its
transactional id anyway.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from app.worker.metrics import WorkerStats
from app.worker.settings import WorkerSettings

REPORT_EVERY_S = 0.2


def snapshot(stats: WorkerStats, ingest: Any) -> dict[str, Any]:
    return {
        "events_in": dict(stats.events_in),
        "rejects": dict(stats.rejects),
        "deadlettered": stats.deadlettered,
        "dropped": stats.dropped,
        "forwarded": stats.forwarded,
        "alerts": stats.alerts_sent,
        "outages": stats.outages,
        "assignment": list(ingest.assignment),
        "outage_s": ingest.outage_s,
        "delivery_failures": dict(stats.delivery_failures),
        "stall": stats.ingest_stall,
        "engine": ingest.engine.totals().as_dict(),
        "rules": {
            rule.rule_id: {k: v for k, v in s.as_dict().items() if k in RULE_COUNTERS}
            for rule, s in ingest.engine.rule_stats()
        },
    }


RULE_COUNTERS = ("alerts", "held_by_cap", "decoded", "late")
"""The per-rule counters the ingest process reports (its event rules alert there, and
every rule's events are decoded there)."""


def child_main(settings: WorkerSettings, conn: Connection, parent: int) -> None:
    """The child: one Ingest loop in the main thread, reporting over `conn`."""
    from app.worker.ingest import Ingest, build_engine
    from app.worker.supervise import die_with

    die_with(parent)
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s",
    )
    stats = WorkerStats()
    ingest = Ingest(settings, build_engine(settings, report=False), stats)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: ingest.stopping.set())
    last = 0.0

    def report(final: bool = False) -> None:
        nonlocal last
        now = time.monotonic()
        if not final and now - last < REPORT_EVERY_S:
            return
        last = now
        message = snapshot(stats, ingest)
        ingest.outage_s = None  # reported once
        with contextlib.suppress(OSError):
            conn.send(message)

    ingest.on_tick = report
    try:
        ingest.run()
    finally:
        report(final=True)
        if ingest.error is not None:
            with contextlib.suppress(OSError):
                conn.send({"error": f"{type(ingest.error).__name__}: {ingest.error}"})
        conn.close()
    os._exit(1 if ingest.error is not None else 0)


class IngestProcess:
    """The parent's handle: what `IngestRunner` and /healthz need of an ingest stage."""

    def __init__(self, settings: WorkerSettings, stats: WorkerStats) -> None:
        self.settings = settings
        self.stats = stats
        self.assignment: list[str] = []
        self.outage_s: float | None = None
        self.error: BaseException | None = None
        self._process: Any = None
        self._conn: Connection | None = None

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent_conn, child_conn = context.Pipe(duplex=False)
        self._process = context.Process(
            target=child_main,
            args=(self.settings, child_conn, os.getpid()),
            name="seqwatch-ingest",
            daemon=True,
        )
        self._process.start()
        child_conn.close()
        self._conn = parent_conn

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def sync(self) -> None:
        """Apply every report the child has sent since the last call."""
        conn = self._conn
        if conn is None:
            return
        try:
            while conn.poll():
                self._apply(conn.recv())
        except (EOFError, OSError):
            self._conn = None

    def _apply(self, report: dict[str, Any]) -> None:
        if "error" in report:
            self.error = RuntimeError(f"ingest process failed: {report['error']}")
            return
        stats = self.stats
        stats.events_in = Counter(report["events_in"])
        stats.rejects = Counter(report["rejects"])
        stats.deadlettered = report["deadlettered"]
        stats.dropped = report["dropped"]
        stats.forwarded = report["forwarded"]
        stats.ingest_alerts = report["alerts"]
        stats.outages = report["outages"]
        stats.delivery_failures = Counter(report["delivery_failures"])
        stats.ingest_stall = report["stall"]
        stats.ingest_engine = report["engine"]
        stats.ingest_rules = report["rules"]
        self.assignment = report["assignment"]
        if report["outage_s"] is not None:
            self.outage_s = report["outage_s"]

    def stop(self, timeout: float = 30.0) -> None:
        process = self._process
        if process is None:
            return
        if process.is_alive():
            process.terminate()  # SIGTERM: the child ends its batch and closes cleanly
            process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join(5)
        self.sync()
