"""`seqwatch kafka up | down | status | reset`: the local development broker."""

from __future__ import annotations

import click
import orjson

from devtools.kafka import KAFKA_VERSION, SASL_USER, SECURE_MECHANISMS, LocalKafka

_port = click.option(
    "--port",
    type=int,
    default=9092,
    show_default=True,
    envvar="SEQWATCH_KAFKA_PORT",
    help="Client port on 127.0.0.1; the controller listens on port+1.",
)
_version = click.option(
    "--version",
    "version",
    default=KAFKA_VERSION,
    show_default=True,
    envvar="SEQWATCH_KAFKA_VERSION",
    help="Apache Kafka release (org.apache.kafka:kafka_2.13) to fetch from Maven Central.",
)


@click.group()
def kafka() -> None:
    """A local single-node Apache Kafka (KRaft) for development and tests."""


@kafka.command()
@_port
@_version
@click.option("--timeout", type=float, default=90.0, show_default=True, help="Seconds to wait.")
@click.option(
    "--secure",
    is_flag=True,
    envvar="SEQWATCH_KAFKA_SECURE",
    help=(
        "Also open a SASL_SSL listener (TLS; SCRAM-SHA-512 and PLAIN) on port+2, with a "
        "generated CA and password (in the run directory, never printed)."
    ),
)
def up(port: int, version: str, timeout: float, secure: bool) -> None:
    """Start the broker (a no-op when it already runs)."""
    broker = LocalKafka(port=port, version=version, secure=secure)
    click.echo(broker.up(timeout=timeout))
    click.echo(f"log: {broker.log_file}")
    if broker.runs_secure():
        _echo_secure(broker)


def _echo_secure(broker: LocalKafka) -> None:
    """Where the secure listener's files are, and the exports (the password by reference)."""
    click.echo(f"secure:  SASL_SSL on {broker.secure_bootstrap} ({', '.join(SECURE_MECHANISMS)})")
    click.echo(f"  ca file       {broker.ca_file}")
    click.echo(f"  user          {SASL_USER}")
    click.echo(f"  password file {broker.password_file}")
    click.echo("to use it:")
    for line in broker.exports():
        click.echo(f"  {line}")


@kafka.command()
@_port
def down(port: int) -> None:
    """Stop the broker cleanly; topics and offsets are kept for the next `up`."""
    click.echo(LocalKafka(port=port).down())


@kafka.command()
@_port
def reset(port: int) -> None:
    """Stop the broker and delete its data (all topics and offsets)."""
    broker = LocalKafka(port=port)
    broker.reset()
    click.echo(f"deleted {broker.run_dir}")


@kafka.command()
@_port
@_version
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
def status(port: int, version: str, as_json: bool) -> None:
    """Say whether the broker runs, where, and where its files are. Exit 1 when down."""
    broker = LocalKafka(port=port, version=version)
    info = broker.status()
    if as_json:
        click.echo(orjson.dumps(info).decode())
    else:
        state = f"running (pid {info['pid']})" if info["running"] else "not running"
        click.echo(f"Kafka {info['version']}: {state}")
        for key in ("bootstrap", "controller", "data", "log", "libs"):
            click.echo(f"  {key:<10} {info[key]}")
        if info["secure"]:
            _echo_secure(broker)
    raise SystemExit(0 if info["running"] else 1)
