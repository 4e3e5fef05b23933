"""One `seqwatch worker` subprocess, end to end over the preloaded bench input.

A real subprocess with the real CLI, as an operator runs it, not an in-process app: the
number must include the worker's own Kafka clients, transactions, the Faust agent and
RocksDB. Start-up (imports, Faust's boot, the group join) is excluded: the clock starts
when /healthz first shows the ingest stage holding partitions, and stops when the reader
has seen the last expected alert on the alerts topic (read_committed). Records read
before the clock started are reported (`events_in_at_t0`) and the runner rates the run
by the records read after it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.kafka.settings import KafkaSettings
from devtools.bench.alerts import AlertReader, AlertTally
from devtools.harness import WorkerProcess, cpu_seconds


@dataclass
class WorkerSpec:
    """What one bench worker reads and writes; everything fresh per run."""

    inputs: Sequence[str]
    alerts_topic: str
    deadletter_topic: str
    group_id: str
    data_dir: Path
    log_path: Path
    partitions: int = 4
    extra: Sequence[str] = ()

    def worker(self, settings: KafkaSettings) -> WorkerProcess:
        """The bench's worker: these topics, no alert cap, a fresh state directory."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return WorkerProcess(
            settings,
            self.data_dir,
            self.log_path,
            "--input-topics",
            ",".join(self.inputs),
            "--alerts-topic",
            self.alerts_topic,
            "--deadletter-topic",
            self.deadletter_topic,
            "--group-id",
            self.group_id,
            "--partitions",
            str(self.partitions),
            "--alert-cap",
            "0",
            *self.extra,
        )


@dataclass
class WorkerRun:
    """One end-to-end repeat: the timing, the alert tally and what /metrics said."""

    seconds: float | None
    tally: AlertTally
    events_in_at_t0: float
    ingest_done_s: float | None
    """From t0 until /metrics showed every input record read by the ingest stage."""
    cpu_seconds: float | None
    startup_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    timeline: list[tuple[float, float, float, float, int]] = field(default_factory=list)
    """(s since t0, events_in, forwarded, sequenced, alerts seen) about every second."""
    stalled: bool = False
    processed_s: float | None = None
    """From t0 until /metrics showed every input record read and every forwarded event
    sequenced (0.25 s resolution): the throughput even when alerts are missing."""
    incomplete: bool = False
    """Everything was processed but the expected alerts never all arrived."""
    pid: int | None = None


def events_in(metrics: dict[str, float]) -> float:
    return metrics.get("seqwatch_events_in", 0.0)


def run_end_to_end(
    settings: KafkaSettings,
    spec: WorkerSpec,
    *,
    events: int,
    expected_alerts: int,
    stall_timeout: float = 15.0,
    on_started: Any = None,
) -> WorkerRun:
    """Start a worker on the preloaded input; time from ingest assignment to the last alert.

    Stops early when nothing moves for `stall_timeout` s (events read, forwarded, sequenced
    and alerts seen all unchanged): `incomplete` if everything had been processed (alerts
    are missing), `stalled` if not, so a lost alert fails the run instead of hanging it.
    After the last alert, waits for the worker to have sequenced everything it forwarded,
    plus one commit, so excess or duplicate alerts are counted.
    """
    reader = AlertReader(settings, spec.alerts_topic, target=expected_alerts).start()
    worker = spec.worker(settings)
    spawned = time.perf_counter()
    worker.start()
    if on_started is not None:
        on_started(worker)
    try:
        t0, _ = worker.wait_ingest_assigned()
        cpu0 = cpu_seconds(worker.pid or 0)
        first = worker.metrics()
        run = WorkerRun(
            seconds=None,
            tally=reader.tally,
            events_in_at_t0=events_in(first),
            ingest_done_s=None,
            cpu_seconds=None,
            startup_s=t0 - spawned,
            pid=worker.pid,
        )
        last_change = time.monotonic()
        last_key: tuple[float, ...] = ()
        next_scrape = 0.0
        t1: float | None = None
        while True:
            done = expected_alerts == 0 or reader.reached.wait(0.05)
            now = time.monotonic()
            if now >= next_scrape or done:
                next_scrape = now + 0.25
                worker.check_alive()
                m = worker.metrics()
                seen, _ = reader.snapshot()
                since = time.perf_counter() - t0
                row = (
                    round(since, 2),
                    events_in(m),
                    m.get("seqwatch_forwarded", 0.0),
                    m.get("seqwatch_sequenced", 0.0),
                    seen,
                )
                if not run.timeline or since - run.timeline[-1][0] >= 0.95:
                    run.timeline.append(row)
                if run.ingest_done_s is None and events_in(m) >= events:
                    run.ingest_done_s = since
                if run.processed_s is None and events_in(m) >= events and row[3] >= row[2]:
                    run.processed_s = since
                key = row[1:]
                if key != last_key:
                    last_key, last_change = key, now
                if expected_alerts == 0 and events_in(m) >= events and row[3] >= row[2]:
                    t1 = time.perf_counter()
                    break
                if now - last_change > stall_timeout:
                    run.stalled = run.processed_s is None
                    run.incomplete = not run.stalled
                    break
            if done and expected_alerts:
                t1 = reader.tally.reached_at
                break
        if t1 is not None:
            run.seconds = t1 - t0
            cpu1 = cpu_seconds(worker.pid or 0)
            if cpu0 is not None and cpu1 is not None:
                run.cpu_seconds = cpu1 - cpu0
        _drain(worker, events)
        run.metrics = worker.metrics()
        seen, _ = reader.snapshot()
        run.timeline.append(
            (
                round(time.perf_counter() - t0, 2),
                events_in(run.metrics),
                run.metrics.get("seqwatch_forwarded", 0.0),
                run.metrics.get("seqwatch_sequenced", 0.0),
                seen,
            )
        )
        return run
    finally:
        worker.stop()
        reader.stop()


def _drain(worker: WorkerProcess, events: int, timeout: float = 30.0) -> None:
    """Until everything read is sequenced, then one more commit interval and a margin, so
    alerts beyond the expected ones (or duplicates) have had their chance to show up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = worker.metrics()
        if events_in(m) >= events and m.get("seqwatch_sequenced", 0) >= m.get(
            "seqwatch_forwarded", 0
        ):
            break
        time.sleep(0.25)
    time.sleep(1.0)
