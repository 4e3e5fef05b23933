"""A recording read once: each line's event time and indexing time, and its events."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, replace
from pathlib import Path

from app.engine.core import check_record, parse_record
from app.engine.event import Event, Reject, Source
from app.engine.normalise import View
from app.engine.ruleset import RuleSet
from app.engine.timestamps import parse_timestamp_ms
from app.errors import ConfigError


@dataclass(frozen=True)
class Line:
    """One record of the recording that some rule's stage matched."""

    position: int
    """Its place in the recording (files in order): arrival order, for the stream."""
    timestamp_ms: int
    ingested_ms: int
    events: tuple[Event, ...]


@dataclass
class Recording:
    lines: list[Line]
    """The records that matched a stage, in recording order."""
    records: int
    first_ms: int | None
    last_ms: int | None
    last_ingested_ms: int | None
    unreadable: int
    """Lines that are not JSON objects with an event time (ignored by both)."""


def _read(name: str) -> bytes:
    path = Path(name)
    if not path.is_file():
        what = "not found" if not path.exists() else "is not a file"
        raise ConfigError(f"input {name} {what}")
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if path.suffix == ".gz" else data
    except (OSError, gzip.BadGzipFile, EOFError) as exc:
        raise ConfigError(f"cannot read {name}: {exc}") from None


def read(
    names: tuple[str, ...],
    engine: RuleSet,
    *,
    ingested_field: str = "event.ingested",
    ingest_delay_ms: int | None = None,
    max_record_bytes: int = 1 << 20,
) -> Recording:
    """Every line's times and `engine`'s events of it. The indexing time is the
    `ingested_field` when a record has one (and no fixed `ingest_delay_ms` is given),
    else the event time plus the delay (0 by default)."""
    parts = tuple(ingested_field.split("."))
    lines: list[Line] = []
    records = unreadable = 0
    first = last = last_ingested = None
    for number, name in enumerate(names):
        data = _read(name)
        for row, raw in enumerate(data.splitlines(), start=1):
            if not raw.strip():
                continue
            records += 1
            body = check_record(raw, max_record_bytes)
            doc = body if type(body) is Reject else parse_record(body)  # type: ignore[arg-type]
            view = None if type(doc) is Reject else View(doc)  # type: ignore[arg-type]
            timestamp = view.timestamp_ms() if view is not None else None
            if view is None or timestamp is None:
                unreadable += 1
                continue
            ingested = None
            if ingest_delay_ms is None:
                found = view.values(ingested_field, parts)
                ingested = parse_timestamp_ms(found[0]) if found else None
            if ingested is None:
                ingested = timestamp + (ingest_delay_ms or 0)
            first = timestamp if first is None else min(first, timestamp)
            last = timestamp if last is None else max(last, timestamp)
            last_ingested = ingested if last_ingested is None else max(last_ingested, ingested)
            decoded = engine.decode(raw, Source(Path(name).name, number, row))
            if decoded is None or type(decoded) is Reject:
                continue
            events = (decoded,) if type(decoded) is Event else decoded
            lines.append(Line(records, timestamp, ingested, events))  # type: ignore[arg-type]
    return Recording(lines, records, first, last, last_ingested, unreadable)


def of_rule(lines: list[Line], tag: str) -> list[Line]:
    """The lines with an event of the rule tagged `tag`, holding only its events."""
    out = []
    for line in lines:
        events = tuple(e for e in line.events if e.rule == tag)
        if events:
            out.append(line if len(events) == len(line.events) else replace(line, events=events))
    return out
