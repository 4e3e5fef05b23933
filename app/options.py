"""How a settings field is given on the command line: declared once, on the field.

A settings dataclass (`EngineSettings`, `WorkerSettings`) carries a `Flag` in the
metadata of each field a user can set; the CLI builds its click options from them
(`app.cli.options.settings_options`), so a default, a help text or a flag name is
written in one place. No click here: the engine's settings stay importable without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from app.durations import format_duration, parse_duration


@dataclass(frozen=True)
class Flag:
    name: str
    """The long option, e.g. "--ttl"; its variable is SEQWATCH_TTL."""
    help: str
    parse: Callable[[Any], Any] | None = None
    """Command-line text (or the default shown) -> the field's value."""
    show: Callable[[Any], Any] | None = None
    """The field's default -> what the command line shows and parses back."""
    kind: type | None = None
    choices: tuple[str, ...] | None = None
    multiple: bool = False
    """Repeatable: the field is a tuple, `parse` applies to each value."""

    @property
    def envvar(self) -> str:
        return "SEQWATCH_" + self.name.removeprefix("--").replace("-", "_").upper()


def flag(name: str, help: str, **options: Any) -> dict[str, Flag]:
    """Field metadata for a settings field set by `name`."""
    return {"flag": Flag(name, help, **options)}


def duration_flag(name: str, help: str, seconds: bool = False) -> dict[str, Flag]:
    """A duration given as text ("9m", "100ms"), held in ms (or in seconds)."""
    if seconds:
        return flag(
            name,
            help,
            parse=lambda text: parse_duration(text, what=name) / 1000,
            show=lambda s: format_duration(round(s * 1000)),
        )
    return flag(
        name, help, parse=lambda text: parse_duration(text, what=name), show=format_duration
    )


def flags_of(cls: type) -> list[tuple[tuple[str, ...], Flag, Any]]:
    """(field path, flag, default) of every flagged field, nested settings included."""
    out: list[tuple[tuple[str, ...], Flag, Any]] = []
    instance = cls()
    for f in fields(cls):  # type: ignore[arg-type]
        value = getattr(instance, f.name)
        if "flag" in f.metadata:
            out.append(((f.name,), f.metadata["flag"], value))
        elif is_dataclass(value) and f.metadata.get("nested"):
            out.extend(((f.name, *path), fl, d) for path, fl, d in flags_of(type(value)))
    return out
