"""Options shared by subcommands: the Kafka connection, and options derived from settings.

`settings_options(cls)` turns the `Flag`s declared on a settings dataclass's fields
(app.options) into click options, and `settings_from(cls, params)` builds the settings
back from them: defaults, help texts and SEQWATCH_* variables live on the settings.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from app.kafka.settings import MECHANISMS, PROTOCOLS, KafkaSettings
from app.options import flags_of

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


def settings_options(cls: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Click options for every flagged field of `cls`, nested settings included."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for path, flag, default in reversed(flags_of(cls)):
            shown = flag.show(default) if flag.show is not None and default is not None else default
            kind: Any = click.Choice(flag.choices) if flag.choices else flag.kind
            func = click.option(
                flag.name,
                "__".join(path),
                envvar=flag.envvar,
                default=shown,
                show_default=default is not None and not flag.multiple,
                type=kind,
                multiple=flag.multiple,
                help=flag.help,
            )(func)
        return func

    return decorate


def settings_from(cls: type, params: dict[str, Any], **given: Any) -> Any:
    """`cls` from the options `settings_options(cls)` added (taken out of `params`)."""
    values: dict[tuple[str, ...], Any] = {}
    for path, flag, _ in flags_of(cls):
        raw = params.pop("__".join(path))
        if flag.multiple:
            values[path] = tuple(flag.parse(v) if flag.parse else v for v in raw or ())
            continue
        values[path] = flag.parse(raw) if flag.parse is not None and raw is not None else raw
    return _build(cls, values, given)


def _build(cls: type, values: dict[tuple[str, ...], Any], given: dict[str, Any]) -> Any:
    kwargs = dict(given)
    nested: dict[str, dict[tuple[str, ...], Any]] = {}
    for path, value in values.items():
        if len(path) == 1:
            kwargs[path[0]] = value
        else:
            nested.setdefault(path[0], {})[path[1:]] = value
    defaults = cls()
    for name, sub in nested.items():
        kwargs[name] = _build(type(getattr(defaults, name)), sub, {})
    return cls(**kwargs)


def load_cli_rules(
    rule_path: str | None, rule_paths: tuple[str, ...], mapping: Any, command: str
) -> list[Any]:
    """`--rule FILE` (the bundled rule when neither is given) and every rule under
    `--rules PATH`: one that does not load is said on stderr and skipped, as detect does."""
    from app.engine import load_rule
    from app.engine.rule import load_rules

    rules = []
    if rule_path is not None or not rule_paths:
        rules.append(load_rule(rule_path, mapping))
    if rule_paths:
        found = load_rules(rule_paths, mapping=mapping)
        for path, reason in found.refused:
            click.echo(f"seqwatch {command}: rule {path} not loaded: {reason}", err=True)
        ids = {rule.rule_id for rule in rules}
        rules.extend(rule for rule in found.rules if rule.rule_id not in ids)
    return rules
