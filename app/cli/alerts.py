"""`seqwatch alerts`: print the alerts topic (read_committed), one JSON object per line."""

from __future__ import annotations

import click
import orjson

from app.cli.options import kafka_options
from app.kafka import io
from app.kafka.settings import KafkaSettings


@click.command()
@kafka_options
@click.option("--topic", envvar="SEQWATCH_ALERTS_TOPIC", default="alerts", show_default=True)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new alerts until interrupted.")
@click.option(
    "--timeout",
    default=10.0,
    show_default=True,
    type=float,
    help="Exit after this many seconds without a new alert.",
)
@click.option("--pretty", is_flag=True, help="One readable line per alert instead of JSON.")
def alerts(kafka: KafkaSettings, topic: str, follow: bool, timeout: float, pretty: bool) -> None:
    """Print every committed alert in the topic."""
    from app.alerts_view import one_line

    try:
        for msg in io.consume(kafka, topic, idle_timeout=timeout, follow=follow):
            value = msg.value()
            if value is None:
                continue
            if pretty:
                click.echo(one_line(orjson.loads(value)))
            else:
                click.echo(value.decode("utf-8", "replace"))
    except KeyboardInterrupt:
        pass
