"""`seqwatch demo`: the whole product on one machine, start to finish.

Local Kafka up, topics applied, one worker started, the bundled samples replayed,
the alerts printed, and everything this command started stopped again. The number
of alerts to wait for comes from the offline engine (`seqwatch detect`) on the same
files, so the demo also shows that the stream and the backtest agree.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import orjson
from rich.console import Console

from app.errors import SeqwatchError
from app.kafka import io
from app.kafka.settings import KafkaSettings
from devtools.harness import free_port
from devtools.kafka import LocalKafka

SAMPLES = Path(__file__).resolve().parents[2] / "topics" / "samples"
SAMPLE_FILES = ("logs-endpoint.events.network", "logs-endpoint.events.process", "winlogbeat")


@click.command()
@click.option("--port", default=9092, show_default=True, type=int, envvar="SEQWATCH_KAFKA_PORT")
@click.option(
    "--samples",
    type=click.Path(file_okay=False, path_type=Path),
    default=SAMPLES,
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True, help="Print the alerts as JSON lines.")
@click.option(
    "--timeout",
    default=120.0,
    show_default=True,
    type=float,
    help="Seconds to wait for the alerts.",
)
@click.option("--keep-kafka", is_flag=True, help="Leave a broker this command started running.")
def demo(port: int, samples: Path, as_json: bool, timeout: float, keep_kafka: bool) -> None:
    """Run the main job end to end on a local Kafka and print the alerts."""
    console = Console(stderr=True)
    files = [
        samples / f"{name}.ndjson" for name in SAMPLE_FILES if (samples / f"{name}.ndjson").exists()
    ]
    if not files:
        raise SeqwatchError(f"no sample files in {samples}")
    broker = LocalKafka(port=port)
    started_kafka = broker.pid() is None
    console.print(f"[bold]1/5[/] Kafka: {broker.up()}")
    kafka = KafkaSettings(bootstrap=broker.bootstrap)
    worker: subprocess.Popen[bytes] | None = None
    workdir = Path(tempfile.mkdtemp(prefix="seqwatch-demo-"))
    try:
        console.print("[bold]2/5[/] topics:")
        _run(["topics", "apply", "--bootstrap", kafka.bootstrap], console, ok_codes=(0, 1))
        expected = _expected_alert_ids(files)
        console.print(
            f"      the offline engine finds {len(expected)} alert(s) in {len(files)} sample files"
        )
        start_offsets = _end_offsets(kafka, "alerts")
        web_port = free_port()
        log_path = workdir / "worker.log"
        group = f"seqwatch-demo-{int(time.time())}"
        console.print(
            f"[bold]3/5[/] worker: group {group}, "
            f"metrics http://127.0.0.1:{web_port}/metrics, log {log_path}"
        )
        worker = _start_worker(kafka, group, workdir / "state", web_port, log_path)
        console.print("[bold]4/5[/] replay:")
        for path in files:
            _run(
                [
                    "replay",
                    "--bootstrap",
                    kafka.bootstrap,
                    "--topic-from-filename",
                    "-q",
                    str(path),
                ],
                console,
            )
        console.print(f"[bold]5/5[/] waiting for {len(expected)} alert(s) on topic 'alerts' ...")
        found = _collect_alerts(kafka, start_offsets, expected, timeout, worker)
        if as_json:
            for alert in found.values():
                click.echo(orjson.dumps(alert).decode())
        else:
            from app.alerts_view import table

            Console().print(
                table(found.values(), f"{len(found)} alert(s): MsBuild Making Network Connections")
            )
        missing = expected - found.keys()
        if missing:
            raise SeqwatchError(
                f"{len(missing)} of {len(expected)} expected alerts did not arrive within "
                f"{timeout:.0f} s; worker log: {log_path}"
            )
        console.print(
            f"[green]done[/]: {len(found)} alert(s), the same as `seqwatch detect` on the samples"
        )
    finally:
        if worker is not None:
            _stop(worker)
        if started_kafka and not keep_kafka:
            console.print(f"Kafka: {broker.down()}")


def _run(args: list[str], console: Console, ok_codes: tuple[int, ...] = (0,)) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args], capture_output=True, text=True, check=False
    )
    for line in (result.stdout + result.stderr).strip().splitlines():
        console.print(f"      {line}", highlight=False)
    if result.returncode not in ok_codes:
        raise SeqwatchError(f"`seqwatch {' '.join(args[:2])}` failed")


def _expected_alert_ids(files: list[Path]) -> set[str]:
    from app.engine import Engine, Event, MemoryState, Source, load_rule

    engine = Engine(load_rule(None))
    state = MemoryState()
    ids: set[str] = set()
    for path in files:
        for number, (_, line) in enumerate(io.read_lines([path])):
            decoded = engine.decode(line, Source(path.name, 0, number))
            if isinstance(decoded, Event):
                for alert in engine.process(decoded, state):
                    ids.add(_alert_id(alert))
    return ids


def _alert_id(alert: dict[str, object]) -> str:
    from app.alerts_view import field

    return str(field(alert, "alert.id"))


def _end_offsets(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    from app.kafka import admin as kadmin

    _, metadata = kadmin.connect(kafka)
    consumer = Consumer({**kafka.confluent(), **kadmin.QUIET, "group.id": "seqwatch-demo"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in metadata.topics[topic].partitions
        }
    finally:
        consumer.close()


def _collect_alerts(
    kafka: KafkaSettings,
    start: dict[int, int],
    expected: set[str],
    timeout: float,
    worker: subprocess.Popen[bytes],
) -> dict[str, dict[str, object]]:
    from confluent_kafka import Consumer, TopicPartition

    from app.kafka import admin as kadmin

    consumer = Consumer(
        {
            **kafka.confluent(),
            **kadmin.QUIET,
            "group.id": "seqwatch-demo",
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition("alerts", p, o) for p, o in start.items()])
    found: dict[str, dict[str, object]] = {}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not expected <= found.keys():
            if worker.poll() is not None:
                raise SeqwatchError(f"the worker exited with code {worker.returncode}")
            for msg in consumer.consume(num_messages=100, timeout=0.5):
                if msg.error() or msg.value() is None:
                    continue
                alert = orjson.loads(msg.value())
                found.setdefault(_alert_id(alert), alert)
        # Anything beyond the expected set would show a disagreement: give it a moment.
        for msg in consumer.consume(num_messages=100, timeout=1.0):
            if not msg.error() and msg.value() is not None:
                alert = orjson.loads(msg.value())
                found.setdefault(_alert_id(alert), alert)
    finally:
        consumer.close()
    return found


def _start_worker(
    kafka: KafkaSettings, group: str, data_dir: Path, web_port: int, log_path: Path
) -> subprocess.Popen[bytes]:
    log = log_path.open("wb")
    args = [
        "worker",
        "--bootstrap",
        kafka.bootstrap,
        "--group-id",
        group,
        "--data-dir",
        str(data_dir),
        "--web-port",
        str(web_port),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log.close()
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
