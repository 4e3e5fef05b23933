"""Event time as integer epoch milliseconds, the precision Elasticsearch sorts on.

Accepts what the shippers send: ISO 8601 with 0-9 fractional digits (Elastic Defend sends 7)
and `Z`, an offset or no zone (UTC, as Elasticsearch assumes), Sysmon's `UtcTime`
("2020-09-20 01:18:13.287"), and epoch milliseconds as a number or a digit string
(Elasticsearch's default `strict_date_optional_time||epoch_millis`). Fractions below a
millisecond are truncated, as Elasticsearch's `date` type does.
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from typing import Any

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?\Z"
)
_EPOCH = re.compile(r"-?\d{1,16}\Z")
_EPOCH_FRACTION = re.compile(r"(-?\d{1,16})\.(\d{1,6})\Z")
"""Epoch milliseconds with a fraction of a millisecond (`date_nanos`' epoch_millis)."""
_EPOCH_DAY_ORDINAL = date(1970, 1, 1).toordinal()
_MS_PER_DAY = 86_400_000


@lru_cache(maxsize=4096)
def _epoch_day(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01; raises ValueError on an impossible date."""
    return date(year, month, day).toordinal() - _EPOCH_DAY_ORDINAL


def parse_timestamp_ms(value: Any) -> int | None:
    """Return `value` as epoch milliseconds, or None when it cannot be read."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and abs(value) < 1e16 else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    match = _ISO.match(text)
    if match is None:
        if _EPOCH.match(text):
            return int(text)
        fraction = _EPOCH_FRACTION.match(text)
        return int(fraction.group(1)) if fraction else None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        days = _epoch_day(int(year), int(month), int(day))
    except ValueError:
        return None
    h = int(hour) if hour else 0
    m = int(minute) if minute else 0
    s = int(second) if second else 0
    if h > 23 or m > 59 or s > 60:  # 60: a leap second, as ISO 8601 allows
        return None
    ms = int((fraction or "0")[:3].ljust(3, "0"))
    total = days * _MS_PER_DAY + ((h * 60 + m) * 60 + s) * 1000 + ms
    if zone and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset_h = int(digits[:2])
        offset_m = int(digits[2:4]) if len(digits) >= 4 else 0
        if offset_h > 23 or offset_m > 59:
            return None
        total -= sign * (offset_h * 60 + offset_m) * 60_000
    return total


def parse_timestamp_ns(value: Any) -> int | None:
    """`value` as epoch nanoseconds, for a field an index maps as `date_nanos`: the
    fraction kept to 9 digits (epoch numbers are milliseconds, as Elasticsearch reads
    them)."""
    ms = parse_timestamp_ms(value)
    if ms is None:
        return None
    below = 0
    if isinstance(value, str):
        text = value.strip()
        match = _ISO.match(text)
        if match is not None and match.group(7):
            below = int(match.group(7)[3:9].ljust(6, "0"))
        elif (epoch := _EPOCH_FRACTION.match(text)) is not None:
            below = int(epoch.group(2).ljust(6, "0"))
    return ms * 1_000_000 + below


def format_timestamp_ms(ms: int) -> str:
    """ISO 8601 UTC with milliseconds ("2020-09-20T01:18:13.416Z"), as Elasticsearch prints."""
    days, rest = divmod(ms, _MS_PER_DAY)
    d = date.fromordinal(days + _EPOCH_DAY_ORDINAL)
    seconds, millis = divmod(rest, 1000)
    minutes, sec = divmod(seconds, 60)
    hours, mins = divmod(minutes, 60)
    return f"{d.isoformat()}T{hours:02d}:{mins:02d}:{sec:02d}.{millis:03d}Z"
