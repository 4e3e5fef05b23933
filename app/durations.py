"""Human durations ("9m", "60s", "500ms", "1h", "2d") as integer milliseconds.

Shared by `seqwatch detect`, the worker and rule loading (`from = "now-9m"`, `maxspan=30s`),
so every part of seqwatch reads a duration the same way.
"""

from __future__ import annotations

import re

from app.errors import ConfigError

_UNITS_MS: dict[str, int] = {
    "ms": 1,
    "s": 1_000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*\Z", re.IGNORECASE)


def parse_duration(text: str | int | float, *, what: str = "duration") -> int:
    """Return `text` ("9m", "60s", "500ms", "1h", "1.5s") in milliseconds.

    A bare number is accepted only for 0, because "60" could mean seconds or milliseconds
    and guessing wrong silently changes detection; raises ConfigError with one line.
    """
    if isinstance(text, bool):
        raise ConfigError(f"invalid {what} {text!r}: expected e.g. 9m, 60s, 500ms, 1h")
    if isinstance(text, int | float):
        if text == 0:
            return 0
        raise ConfigError(f"invalid {what} {text!r}: give a unit, e.g. 9m, 60s, 500ms, 1h")
    if text.strip() == "0":
        return 0
    match = _DURATION.match(text)
    if match is None:
        raise ConfigError(f"invalid {what} {text!r}: expected e.g. 9m, 60s, 500ms, 1h")
    number, unit = match.groups()
    return round(float(number) * _UNITS_MS[unit.lower()])


def format_duration(ms: int) -> str:
    """The shortest exact form of `ms` ("9m", "1500ms"), for logs and summaries."""
    for unit in ("d", "h", "m", "s"):
        size = _UNITS_MS[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
