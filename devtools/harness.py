"""One `seqwatch worker` subprocess, as an operator runs it: for tests, bench, soak and
recovery measurements alike.

A real subprocess of the real CLI, with its own log, web port and state directory; its
connection settings (secrets included) reach it through the environment, never argv.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from app.errors import SeqwatchError
from app.kafka.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[1]
RESERVED_PORTS = range(29092, 29801)
"""Brokers of tests and concurrent sessions live there: never bind a web port in it."""
LISTEN_PORTS = range(20000, 29000)
"""Web ports: below the kernel's ephemeral range and RESERVED_PORTS."""


class WorkerExited(SeqwatchError):
    """The worker process ended while it was expected to run."""


def free_port() -> int:
    """A port for a worker's web server that no outgoing connection can take meanwhile.

    The kernel's ephemeral range (Linux: 32768-60999) serves every client's outgoing
    connections, so a port found free there can be gone by the time the worker binds it.
    """
    for port in random.sample(LISTEN_PORTS, 50):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise SeqwatchError("no free port for the worker's web server")


def worker_env(settings: KafkaSettings) -> dict[str, str]:
    """The caller's environment without SEQWATCH_* (a stray SEQWATCH_INPUT_PATTERN must not
    redirect the worker), plus the connection settings."""
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


class WorkerProcess:
    """`seqwatch worker ARGS...` with its log, /healthz and /metrics."""

    def __init__(self, kafka: KafkaSettings, data_dir: Path, log_path: Path, *args: str) -> None:
        self.kafka = kafka
        self.data_dir = data_dir
        self.log_path = log_path
        self.args = args
        self.web_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_offset = 0

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.log_offset = log.tell()  # where this run's lines begin in a shared log
            cmd = [
                sys.executable,
                "-m",
                "app.cli.main",
                "worker",
                "--data-dir",
                str(self.data_dir),
                "--web-port",
                str(self.web_port),
                *self.args,
            ]
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=worker_env(self.kafka),
            )
        return self

    # -- what it says -----------------------------------------------------------------

    def log_text(self) -> str:
        """What this run (not an earlier one in the same file) has logged."""
        with self.log_path.open("rb") as handle:
            handle.seek(self.log_offset)
            return handle.read().decode(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def health_response(self) -> tuple[int, dict[str, Any]] | None:
        """(HTTP status, body) of /healthz, 503 included; None while nothing answers."""
        url = f"http://127.0.0.1:{self.web_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status, orjson.loads(resp.read())
        except urllib.error.HTTPError as err:
            try:
                return err.code, orjson.loads(err.read())
            except orjson.JSONDecodeError:  # the web server's own error page, not ours
                return None
        except (OSError, orjson.JSONDecodeError):
            return None

    def health(self) -> dict[str, Any] | None:
        """The /healthz body while it answers 200."""
        response = self.health_response()
        return response[1] if response and response[0] == 200 else None

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def metrics(self) -> dict[str, float]:
        """Every metric summed over its labels, `_total` removed ({} while nothing answers)."""
        try:
            return parse_metrics(self.metrics_text())
        except OSError:
            return {}

    def metric(self, name: str, default: float | None = None) -> float:
        """One metric as exposed (`name` may carry labels), summed over the rest of them;
        absent is an error without a default (a labelled counter has no sample before
        its first event)."""
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in self.metrics_text().splitlines()
            if line.startswith((name + " ", name + "{"))
        ]
        if not values and default is not None:
            return default
        if not values:
            raise AssertionError(f"no metric {name}")
        return sum(values)

    # -- waiting and stopping ----------------------------------------------------------

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise WorkerExited(f"worker exited with {self.proc.returncode}\n{self.log_tail()}")

    def wait_ingest_assigned(self, timeout: float = 180.0) -> tuple[float, dict[str, Any]]:
        """Until the ingest stage holds partitions: (time.perf_counter(), health)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            health = self.health()
            ingest = (health or {}).get("ingest") or {}
            if health and isinstance(ingest, dict) and ingest.get("assigned"):
                return time.perf_counter(), health
            time.sleep(0.02)
        raise WorkerExited(f"ingest not assigned in {timeout:.0f} s\n{self.log_tail()}")

    def wait_ready(self, timeout: float = 90.0) -> dict[str, Any]:
        """Until both stages hold partitions and the state is recovered."""
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
        raise WorkerExited(f"worker not ready in {timeout} s\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise WorkerExited(f"worker ignored signal {sig}\n{self.log_tail()}") from None
        return self.proc.returncode


def cpu_seconds(pid: int) -> float | None:
    """user+system CPU of a process and all its descendants, from /proc (Linux); None
    elsewhere or when it is gone. The tree, because `seqwatch worker` runs the worker in a
    supervised child, and the worker its ingest stage in another."""
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
