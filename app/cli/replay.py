"""`seqwatch replay FILE... --topic T`: produce recorded NDJSON to Kafka."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.cli.options import kafka_options
from app.errors import ConfigError, SeqwatchError
from app.kafka import io
from app.kafka.settings import KafkaSettings


@click.command()
@kafka_options
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--topic", help="Topic to produce to.")
@click.option(
    "--topic-from-filename",
    is_flag=True,
    help="Each file to the topic named like it (winlogbeat.ndjson -> winlogbeat).",
)
@click.option(
    "--partitions",
    default=4,
    show_default=True,
    type=int,
    help="Partitions if the topic must be created.",
)
@click.option("--rate", type=float, help="At most this many records per second.")
@click.option(
    "--speed",
    type=float,
    help="Recorded pace from @timestamp: 1 = real time, 10 = ten times faster.",
)
@click.option("--compression", type=click.Choice(io.CODECS), default="lz4", show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def replay(
    kafka: KafkaSettings,
    files: tuple[Path, ...],
    topic: str | None,
    topic_from_filename: bool,
    partitions: int,
    rate: float | None,
    speed: float | None,
    compression: str,
    quiet: bool,
) -> None:
    """Produce NDJSON records (one per line) as fast as possible, or paced."""
    if bool(topic) == topic_from_filename:
        raise ConfigError("give exactly one of --topic T and --topic-from-filename")
    if rate is not None and speed is not None:
        raise ConfigError("give at most one of --rate and --speed")
    if (rate is not None and rate <= 0) or (speed is not None and speed <= 0):
        raise ConfigError("--rate and --speed must be positive")
    targets = {path: topic or _topic_of(path) for path in files}
    for name in sorted(set(targets.values())):
        if io.ensure_topic(kafka, name, partitions):
            click.echo(f"created topic {name} ({partitions} partitions)", err=True)
    total = sum(1 for _ in io.read_lines(files))
    lines = ((targets[path], value) for path, value in io.read_lines(files))
    console = Console(stderr=True)
    with Progress(
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=True,
    ) as progress:
        task = progress.add_task("replay", total=total)
        result = io.replay(
            kafka,
            lines,
            compression=compression,
            rate=rate,
            speed=speed,
            on_progress=lambda n: progress.advance(task, n),
        )
    per_s = result.produced / result.seconds if result.seconds else 0.0
    where = ", ".join(sorted(set(targets.values())))
    click.echo(
        f"replayed {result.produced} records from {len(files)} file(s) to {where} "
        f"in {result.seconds:.2f} s ({per_s:,.0f} records/s)",
        err=True,
    )
    if result.failed:
        raise SeqwatchError(f"{result.failed} records failed: {'; '.join(result.errors)}")


def _topic_of(path: Path) -> str:
    name = path.name
    for suffix in (".ndjson", ".jsonl", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem
