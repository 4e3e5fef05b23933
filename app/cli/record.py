"""`seqwatch record --topic T --out FILE`: dump a topic to NDJSON."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from app.cli.options import kafka_options
from app.kafka import io
from app.kafka.settings import KafkaSettings


@click.command()
@kafka_options
@click.option("--topic", required=True)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="File to write ('-' for stdout).",
)
@click.option("--from-beginning/--from-end", default=True, show_default=True)
@click.option(
    "--timeout",
    default=5.0,
    show_default=True,
    type=float,
    help="Stop after this many seconds without a record.",
)
@click.option("--follow", is_flag=True, help="Keep recording until interrupted.")
def record(
    kafka: KafkaSettings, topic: str, out: str, from_beginning: bool, timeout: float, follow: bool
) -> None:
    """Write every record of a topic, one value per line."""
    handle = sys.stdout.buffer if out == "-" else Path(out).open("wb")  # noqa: SIM115
    count = 0
    try:
        for msg in io.consume(
            kafka, topic, from_beginning=from_beginning, idle_timeout=timeout, follow=follow
        ):
            value = msg.value()
            if value is None:
                continue
            handle.write(value.rstrip(b"\n") + b"\n")
            count += 1
    except KeyboardInterrupt:
        pass
    finally:
        handle.flush()
        if handle is not sys.stdout.buffer:
            handle.close()
    click.echo(f"recorded {count} records from {topic} to {out}", err=True)
