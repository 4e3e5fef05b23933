"""One `seqwatch worker` subprocess, end to end over the preloaded bench input.

A real subprocess with the real CLI, as an operator runs it, not an in-process app: the
number must include the worker's own Kafka clients, transactions, the Faust agent and
RocksDB. Start-up (imports, Faust's boot, the group join) is excluded: the clock starts
when /healthz first shows the ingest stage holding partitions, and stops when the reader
has seen the last expected alert on the alerts topic (read_committed).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from app.bench.alerts import AlertReader, AlertTally
from app.errors import SeqwatchError
from app.kafka.settings import KafkaSettings

RESERVED_PORTS = range(29092, 29501)
"""CI and concurrent sessions run brokers there: never bind a web port in that range."""


def free_port() -> int:
    """An ephemeral port for the worker's web server, outside the reserved range."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in RESERVED_PORTS:
            return port
    raise SeqwatchError("no free port for the worker's web server")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {name: value summed over labels}; `_total` suffixes removed and
    `_created` samples skipped, so `seqwatch_forwarded` reads the same on any client
    version. Histogram series keep their suffixed names (`..._count`, `..._sum`)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name = line[: line.index("{")]
            rest = line[line.rindex("}") + 1 :].split()
        else:
            name, *rest = line.split()
        if not rest or name.endswith("_created"):
            continue
        try:
            value = float(rest[0])
        except ValueError:
            continue
        name = name.removesuffix("_total")
        out[name] = out.get(name, 0.0) + value
    return out


def cpu_seconds(pid: int) -> float | None:
    """user+system CPU of a process and all its descendants, from /proc (Linux); None
    elsewhere or when it is gone. The tree, because `seqwatch worker` may run the real
    worker in a supervised child process."""
    own = _proc_cpu(pid)
    if own is None:
        return None
    return own + sum(_proc_cpu(child) or 0.0 for child in _descendants(pid))


def _proc_cpu(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def worker_env(settings: KafkaSettings) -> dict[str, str]:
    """The caller's environment without SEQWATCH_* (a stray SEQWATCH_INPUT_PATTERN must not
    redirect the bench worker), plus the connection settings, secrets through the
    environment rather than argv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEQWATCH_")}
    env["PYTHONUNBUFFERED"] = "1"
    mapping = {
        "SEQWATCH_BOOTSTRAP": settings.bootstrap,
        "SEQWATCH_SECURITY_PROTOCOL": settings.security_protocol,
        "SEQWATCH_SASL_MECHANISM": settings.sasl_mechanism,
        "SEQWATCH_SASL_USERNAME": settings.sasl_username,
        "SEQWATCH_SASL_PASSWORD": settings.sasl_password,
        "SEQWATCH_SSL_CAFILE": settings.ssl_cafile,
        "SEQWATCH_SSL_CERTFILE": settings.ssl_certfile,
        "SEQWATCH_SSL_KEYFILE": settings.ssl_keyfile,
        "SEQWATCH_SSL_KEY_PASSWORD": settings.ssl_key_password,
    }
    env.update({k: v for k, v in mapping.items() if v})
    return env


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


class BenchWorker:
    """`seqwatch worker` as a subprocess, with its /healthz and /metrics."""

    def __init__(self, settings: KafkaSettings, spec: WorkerSpec) -> None:
        self.settings = settings
        self.spec = spec
        self.web_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self) -> BenchWorker:
        spec = self.spec
        spec.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "app.cli.main",
            "worker",
            "--input-topics",
            ",".join(spec.inputs),
            "--alerts-topic",
            spec.alerts_topic,
            "--deadletter-topic",
            spec.deadletter_topic,
            "--group-id",
            spec.group_id,
            "--data-dir",
            str(spec.data_dir),
            "--partitions",
            str(spec.partitions),
            "--alert-cap",
            "0",
            "--web-port",
            str(self.web_port),
            *spec.extra,
        ]
        with spec.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=spec.data_dir.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=worker_env(self.settings),
            )
        return self

    def _get(self, path: str, timeout: float) -> bytes | None:
        try:
            url = f"http://127.0.0.1:{self.web_port}{path}"
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return bytes(resp.read())
        except OSError:
            return None

    def health(self) -> dict[str, Any] | None:
        body = self._get("/healthz", 2)
        if body is None:
            return None
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        return doc if isinstance(doc, dict) else None

    def metrics(self) -> dict[str, float]:
        body = self._get("/metrics", 5)
        return parse_metrics(body.decode()) if body else {}

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise SeqwatchError(
                f"bench worker exited with {self.proc.returncode}; log {self.spec.log_path}:\n"
                + self.log_tail()
            )

    def wait_ingest_assigned(self, timeout: float = 180.0) -> tuple[float, dict[str, Any]]:
        """Poll /healthz until `ingest.assigned` is non-empty: (perf_counter, health)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            health = self.health()
            if health:
                ingest = health.get("ingest") or {}
                if isinstance(ingest, dict) and ingest.get("assigned"):
                    return time.perf_counter(), health
            time.sleep(0.02)
        raise SeqwatchError(
            f"bench worker: ingest not assigned in {timeout:.0f} s\n{self.log_tail()}"
        )

    def wait_ready(self, timeout: float = 180.0) -> dict[str, Any]:
        """Both stages hold partitions and the state is recovered (for the latency phase)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            health = self.health()
            if (
                health
                and health.get("assigned")
                and health.get("recovering") is False
                and (health.get("ingest") or {}).get("assigned")
            ):
                return health
            time.sleep(0.1)
        raise SeqwatchError(f"bench worker not ready in {timeout:.0f} s\n{self.log_tail()}")

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.spec.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


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
    worker = BenchWorker(settings, spec)
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


def _drain(worker: BenchWorker, events: int, timeout: float = 30.0) -> None:
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
