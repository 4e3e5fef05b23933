"""`seqwatch kafka up | down | status`: a real broker's lifecycle on its own port."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator

import pytest

from app.kafka.admin import connect
from app.kafka.settings import KafkaSettings
from devtools.kafka import LocalKafka
from tests.helpers import run_seqwatch

PORT = "29192"


@pytest.fixture
def spare_port(kafka: KafkaSettings) -> str:
    """A second broker port; the session broker has already put Kafka's jars in the cache."""
    yield PORT
    LocalKafka(port=int(PORT)).reset()


def test_lifecycle_up_is_idempotent_and_down_stops(spare_port: str) -> None:
    first = run_seqwatch("kafka", "up", "--port", spare_port)
    assert first.returncode == 0, first.stderr.decode()
    assert b"started Kafka" in first.stdout

    _, metadata = connect(KafkaSettings(bootstrap=f"127.0.0.1:{spare_port}"), timeout=10)
    assert metadata.brokers, "the broker answers an admin call"

    began = time.monotonic()
    second = run_seqwatch("kafka", "up", "--port", spare_port)
    assert second.returncode == 0
    assert b"already running" in second.stdout
    assert time.monotonic() - began < 10, "a second `up` does not start another JVM"

    status = run_seqwatch("kafka", "status", "--port", spare_port)
    assert status.returncode == 0
    assert b"running (pid" in status.stdout
    assert f"127.0.0.1:{spare_port}".encode() in status.stdout

    down = run_seqwatch("kafka", "down", "--port", spare_port)
    assert down.returncode == 0 and b"stopped Kafka" in down.stdout
    after = run_seqwatch("kafka", "status", "--port", spare_port)
    assert after.returncode == 1 and b"not running" in after.stdout
    again = run_seqwatch("kafka", "down", "--port", spare_port)
    assert again.returncode == 0 and b"not running" in again.stdout


def test_missing_java_is_one_clear_line(tmp_path) -> None:
    env = {"PATH": str(tmp_path), "SEQWATCH_CACHE": str(tmp_path / "cache")}
    result = run_seqwatch("kafka", "up", "--port", "29292", env=env)
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert lines == [
        "seqwatch: 'java' not found on PATH: Java 17+ is needed to run the local Kafka broker"
    ]
    assert not os.path.exists(tmp_path / "cache" / "run" / "kafka-29292" / "kafka.pid")


def test_a_port_held_by_another_process_is_one_clear_line(tmp_path) -> None:
    """The controller port (port+1) taken: `up` names it instead of starting a doomed JVM."""
    env = {"SEQWATCH_CACHE": str(tmp_path / "cache")}
    with _held_controller_port() as taken:
        port = str(taken - 1)
        result = run_seqwatch("kafka", "up", "--port", port, env=env)
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert f"port 127.0.0.1:{taken} is in use" in lines[0]
    assert not os.path.exists(tmp_path / "cache" / "run" / f"kafka-{port}" / "kafka.pid")


@contextlib.contextmanager
def _held_controller_port() -> Iterator[int]:
    """Listen on a port whose neighbour below is free, outside the ephemeral range.

    A port the kernel hands out for outgoing connections (Linux: 32768-60999) can be
    taken by any client at any moment; CI once saw the broker port itself in use.
    Below that range only explicit listeners bind, so a free pair there stays free.
    """
    for taken in range(24001, 32000, 7):
        holder = socket.socket()
        try:
            holder.bind(("127.0.0.1", taken))
        except OSError:
            holder.close()
            continue
        with holder, socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", taken - 1))
            except OSError:
                continue
            probe.close()
            holder.listen()
            yield taken
            return
    raise AssertionError("no free port pair below the ephemeral range")
