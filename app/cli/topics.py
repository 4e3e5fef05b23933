"""`seqwatch topics apply | list`: the topics of `topics/topics.toml` on a cluster."""

from __future__ import annotations

from pathlib import Path

import click

from app.cli.options import kafka_options
from app.kafka import admin as kadmin
from app.kafka.settings import KafkaSettings
from app.topics import LiveTopic, TopicSpec, drift, load_specs

_file = click.option(
    "--file",
    "spec_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Topic declarations [default: $SEQWATCH_TOPICS or topics/topics.toml].",
)
_group = click.option(
    "--group-id",
    envvar="SEQWATCH_GROUP_ID",
    default="seqwatch",
    show_default=True,
    help="The workers' group: it names their internal topics ({group} in the file).",
)


@click.group()
def topics() -> None:
    """Create or check the topics declared in topics/topics.toml."""


@topics.command()
@kafka_options
@_file
@_group
@click.option("--replication-factor", type=int, help="Override the file's default replication.")
@click.option(
    "--check", is_flag=True, help="Create nothing; exit 1 if anything is missing or differs."
)
@click.option("--timeout", type=float, default=10.0, show_default=True)
def apply(
    kafka: KafkaSettings,
    spec_file: Path | None,
    group_id: str,
    replication_factor: int | None,
    check: bool,
    timeout: float,
) -> None:
    """Create missing topics and report drift. A live topic is never changed.

    Exit status: 0 when every topic matches (or was created), 1 when drift or (with
    --check) missing topics were found.
    """
    specs = load_specs(spec_file, replication_factor, group_id)
    client, metadata = kadmin.connect(kafka, timeout=timeout)
    existing = [s.name for s in specs if s.name in metadata.topics]
    configs = kadmin.describe_configs(client, existing)
    bad = 0
    for spec in specs:
        if spec.name not in metadata.topics:
            if check:
                click.echo(f"missing  {spec.name}")
                bad += 1
                continue
            kadmin.create_topic(
                client, spec.name, spec.partitions, spec.replication_factor, spec.config
            )
            click.echo(f"created  {spec.name} ({_summary(spec)})")
            continue
        live = _live(spec.name, metadata, configs[spec.name])
        differences = drift(spec, live)
        if differences:
            bad += 1
            click.echo(f"drift    {spec.name}: {'; '.join(differences)} (left unchanged)")
        else:
            click.echo(f"ok       {spec.name}")
    raise SystemExit(1 if bad else 0)


@topics.command(name="list")
@_file
@_group
def list_(spec_file: Path | None, group_id: str) -> None:
    """Print the declarations (no broker needed)."""
    for spec in load_specs(spec_file, group_id=group_id):
        click.echo(f"{spec.name:<32} {spec.role:<10} {_summary(spec)}  {spec.description}")


def _summary(spec: TopicSpec) -> str:
    retention = spec.config.get("retention.ms")
    days = f", retention {int(retention) / 86_400_000:g} d" if retention else ""
    return f"{spec.partitions} partitions, rf {spec.replication_factor}{days}"


def _live(name: str, metadata: object, config: dict[str, object]) -> LiveTopic:
    topic = metadata.topics[name]  # type: ignore[attr-defined]
    partitions = topic.partitions
    rf = min((len(p.replicas) for p in partitions.values()), default=0)
    return LiveTopic(
        name=name,
        partitions=len(partitions),
        replication_factor=rf,
        config={k: str(v.value) for k, v in config.items()},
    )
