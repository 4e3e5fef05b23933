"""Drive real worker processes and read topics, for the integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from app.kafka import admin as kadmin
from app.kafka.settings import KafkaSettings
from tests.helpers import ROOT

SAMPLE_TOPICS = ("winlogbeat", "logs-endpoint.events.process", "logs-endpoint.events.network")


class Env:
    """Unique topics, group and state for one worker under test."""

    def __init__(self, kafka: KafkaSettings, tmp: Path, unique: str) -> None:
        self.kafka = kafka
        self.tmp = tmp
        self.unique = unique
        self.inputs = {name: f"{name}-{unique}" for name in SAMPLE_TOPICS}
        self.alerts = f"alerts-{unique}"
        self.deadletter = f"deadletter-{unique}"
        self.group = f"group-{unique}"

    def worker(self, *extra: str) -> WorkerProcess:
        return WorkerProcess(
            self.kafka,
            self.tmp / "state",
            self.tmp / "worker.log",
            "--input-topics",
            ",".join(self.inputs.values()),
            "--alerts-topic",
            self.alerts,
            "--deadletter-topic",
            self.deadletter,
            "--group-id",
            self.group,
            "--partitions",
            "4",
            *extra,
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WorkerProcess:
    """One `seqwatch worker` subprocess with its own log, web port and state dir."""

    def __init__(self, kafka: KafkaSettings, data_dir: Path, log_path: Path, *args: str) -> None:
        self.kafka = kafka
        self.data_dir = data_dir
        self.log_path = log_path
        self.args = args
        self.web_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_offset = 0

    def log_text(self) -> str:
        """What this run (not an earlier one in the same file) has logged."""
        with self.log_path.open("rb") as handle:
            handle.seek(self.log_offset)
            return handle.read().decode(errors="replace")

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.log_offset = log.tell()  # where this run's lines begin in a shared log
        cmd = [
            sys.executable,
            "-m",
            "app.cli.main",
            "worker",
            "--bootstrap",
            self.kafka.bootstrap,
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
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        return self

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.web_port}/healthz", timeout=2
            ) as resp:
                return orjson.loads(resp.read())
        except OSError:
            return None

    def health_response(self) -> tuple[int, dict[str, Any]] | None:
        """(HTTP status, body) of /healthz, 503 included; None while nothing answers."""
        import urllib.error

        url = f"http://127.0.0.1:{self.web_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status, orjson.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, orjson.loads(err.read())
        except OSError:
            return None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def metric(self, name: str, default: float | None = None) -> float:
        """One metric's value, summed over its labels; absent is an error without a default.

        A labelled counter (events in, by topic) has no sample before its first event.
        """
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in self.metrics().splitlines()
            if line.startswith((name + " ", name + "{"))
        ]
        if not values and default is not None:
            return default
        assert values, f"no metric {name}"
        return sum(values)

    def wait_ready(self, timeout: float = 90.0) -> dict[str, Any]:
        """Until the worker holds partitions and its tables are recovered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            health = self.health()
            if health and health.get("assigned") and health.get("recovering") is False:
                return health
            time.sleep(0.2)
        raise AssertionError(f"worker not ready in {timeout} s\n{self.log_tail()}")

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited with {self.proc.returncode}\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"worker ignored signal {sig}\n{self.log_tail()}") from None
        return self.proc.returncode

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def produce(
    kafka: KafkaSettings,
    topic: str,
    values: list[bytes],
    compression: str = "lz4",
    keys: list[bytes] | None = None,
) -> None:
    """Produce and wait for every acknowledgement (keys spread records like a shipper's)."""
    from app.kafka.io import ensure_topic, producer_config

    ensure_topic(kafka, topic, 4)
    producer = Producer(producer_config(kafka, compression))
    for i, value in enumerate(values):
        producer.produce(topic, value=value, key=keys[i] if keys else None)
    assert producer.flush(30) == 0


class TopicReader:
    """Reads a whole topic (read_committed) incrementally, without a consumer group."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        _, metadata = kadmin.connect(kafka)
        if topic not in metadata.topics:
            client, _ = kadmin.connect(kafka)
            kadmin.create_topic(client, topic, 4)
            _, metadata = kadmin.connect(kafka)
        self.consumer = Consumer(
            {
                **kafka.confluent(),
                **kadmin.QUIET,
                "group.id": "test-reader",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self.consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.topics[topic].partitions]
        )
        self.records: list[Any] = []

    def poll(self, seconds: float = 0.5) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(num_messages=500, timeout=0.1):
                if not msg.error():
                    self.records.append(msg)

    def wait_for(
        self,
        predicate: Callable[[list[Any]], bool],
        timeout: float = 60.0,
        alive: Callable[[], None] | None = None,
    ) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll(0.3)
            if predicate(self.records):
                return self.records
            if alive:
                alive()
        raise AssertionError(f"timed out with {len(self.records)} records")

    def values(self) -> list[dict[str, Any]]:
        return [orjson.loads(m.value()) for m in self.records]

    def close(self) -> None:
        self.consumer.close()


def changelog_values(kafka: KafkaSettings, group: str) -> tuple[int, int]:
    """(values, largest value in bytes) on a worker's state changelog, read committed."""
    reader = TopicReader(kafka, f"{group}-sequences-changelog")
    reader.poll(3.0)
    sizes = [len(m.value()) for m in reader.records if m.value() is not None]
    reader.close()
    return len(sizes), max(sizes, default=0)


def alert_id(alert: dict[str, Any]) -> str:
    from app.alerts_view import field

    return str(field(alert, "alert.id"))
