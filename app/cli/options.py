"""Options shared by every subcommand that talks to Kafka (flags and SEQWATCH_* variables)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from app.kafka.settings import MECHANISMS, PROTOCOLS, KafkaSettings

_KAFKA_OPTIONS: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.option(
        "--bootstrap",
        envvar="SEQWATCH_BOOTSTRAP",
        default="127.0.0.1:9092",
        show_default=True,
        help="Kafka bootstrap servers, host:port[,host:port].",
    ),
    click.option(
        "--security-protocol",
        envvar="SEQWATCH_SECURITY_PROTOCOL",
        type=click.Choice(PROTOCOLS, case_sensitive=False),
        default="PLAINTEXT",
        show_default=True,
    ),
    click.option(
        "--sasl-mechanism",
        envvar="SEQWATCH_SASL_MECHANISM",
        type=click.Choice(MECHANISMS, case_sensitive=False),
    ),
    click.option("--sasl-username", envvar="SEQWATCH_SASL_USERNAME"),
    click.option(
        "--sasl-password",
        envvar="SEQWATCH_SASL_PASSWORD",
        help="Prefer the environment variable: flags show up in `ps`.",
    ),
    click.option("--ssl-cafile", envvar="SEQWATCH_SSL_CAFILE", type=click.Path(dir_okay=False)),
    click.option("--ssl-certfile", envvar="SEQWATCH_SSL_CERTFILE", type=click.Path(dir_okay=False)),
    click.option("--ssl-keyfile", envvar="SEQWATCH_SSL_KEYFILE", type=click.Path(dir_okay=False)),
    click.option("--ssl-key-password", envvar="SEQWATCH_SSL_KEY_PASSWORD"),
]

_NAMES = (
    "bootstrap",
    "security_protocol",
    "sasl_mechanism",
    "sasl_username",
    "sasl_password",
    "ssl_cafile",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_key_password",
)


def kafka_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the connection options and hand the command one `kafka: KafkaSettings`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, kafka=pop_kafka_settings(kwargs), **kwargs)

    for option in reversed(_KAFKA_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


def pop_kafka_settings(params: dict[str, Any]) -> KafkaSettings:
    """Take the connection options out of a command's parameters."""
    values = {name: params.pop(name) for name in _NAMES}
    values["security_protocol"] = values["security_protocol"].upper()
    if values["sasl_mechanism"]:
        values["sasl_mechanism"] = values["sasl_mechanism"].upper()
    return KafkaSettings(**values)
