"""The records that flow between decode() and process(), and through the repartition topic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

REPARTITION_FORMAT = 1
"""Version of the repartition record (`Event.to_bytes`); a reader refuses other versions."""


class Source(NamedTuple):
    """Where a record came from: Kafka coordinates, or (file name, 0, line number)."""

    topic: str
    partition: int
    offset: int


class Reject(NamedTuple):
    """A malformed record: `reason` is a short code ("not_json"), `detail` says more."""

    reason: str
    detail: str


Decoded = Any
"""What `Engine.decode` returns: an Event, a tuple of Events (one record that joins under
several keys: a multi-valued join key, or stages keyed by different fields), a Reject, or
None. `events_of()` turns the first two into a sequence of Events."""


TICK_PREFIX = b'{"v":1,"tick":'
"""A repartition record that is no event: the ingest stage's wall clock, sent to every
partition now and then so that a partition without events still releases what an
ordered sequence holds (`Engine.tick`)."""


def tick_bytes(wall_ms: int) -> bytes:
    return TICK_PREFIX + str(int(wall_ms)).encode() + b"}"


def parse_tick(raw: Any) -> int | None:
    """The wall clock of a tick record, or None for anything else."""
    if not isinstance(raw, bytes) or not raw.startswith(TICK_PREFIX):
        return None
    try:
        value = orjson.loads(raw)["tick"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return value if type(value) is int else None


BUNDLE_PREFIX = b'{"v":1,"bundle":['
"""A repartition record holding several events of one state partition, in order: the state
stage pays Faust's per-record cost (fetch, decode, ack, commit bookkeeping) once per
bundle instead of once per event, which is what bounds a storm of starts."""


def bundle_bytes(items: list[bytes]) -> bytes:
    """A bundle of `Event.to_bytes()` records (concatenated, not parsed again)."""
    return BUNDLE_PREFIX + b",".join(items) + b"]}"


def _parse(raw: Any) -> Any:
    """A repartition record's JSON; FormatError on anything else."""
    if not isinstance(raw, bytes | bytearray | memoryview | str):
        raise FormatError(f"record value is {type(raw).__name__}, not bytes")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"not JSON: {exc}") from None


def repartition_items(raw: Any) -> list[Any]:
    """The events of a repartition record, still as parsed JSON: one for a single-event
    record, each of a bundle's. Raises FormatError on a record that is neither."""
    data = _parse(raw)
    if isinstance(data, dict) and "bundle" in data:
        items = data["bundle"]
        if data.get("v") != REPARTITION_FORMAT or not isinstance(items, list) or not items:
            raise FormatError("a bundle of another version, or without events")
        return items
    return [data]


def events_of(decoded: Decoded) -> tuple[Event, ...]:
    """The Events of a decode() result that is not a Reject or None."""
    return decoded if type(decoded) is tuple else (decoded,)


class FormatError(ValueError):
    """A repartition record this version cannot read (another version wrote it, or a bug)."""


@dataclass(frozen=True, slots=True)
class Event:
    """A record that matches at least one stage and has a join key.

    `fields` holds the normalised (ECS) values the rule read and the alert reports, so the
    alert never needs to normalise again; `digest` is the sha256 of the raw record bytes and
    identifies exact duplicates wherever the record was read from. `original` is the record
    as received, or None when it was larger than the limit (`original_bytes` says how
    large); `trimmed` names the fields cut to their limits. Both keep every event, and so
    every state value, repartition record and alert, within a known size.
    """

    key: str
    timestamp_ms: int
    stages: tuple[int, ...]
    digest: str
    source: Source
    original: dict[str, Any] | None
    fields: dict[str, Any]
    original_bytes: int = 0
    trimmed: tuple[str, ...] = ()
    tiebreaker: int | float | str | None = None
    rule: str = ""
    """The tag of the rule whose stages it matched, in a worker running several."""

    def to_entry(self) -> dict[str, Any]:
        """What a state store holds of the event (its key is the state key's)."""
        entry: dict[str, Any] = {
            "t": self.timestamp_ms,
            "st": list(self.stages),
            "d": self.digest,
            "src": [self.source.topic, self.source.partition, self.source.offset],
            "f": self.fields,
            "o": self.original,
            "ob": self.original_bytes,
        }
        if self.trimmed:
            entry["tr"] = list(self.trimmed)
        if self.tiebreaker is not None:
            entry["tb"] = self.tiebreaker
        return entry

    def to_bytes(self, record_ms: int | None = None) -> bytes:
        """Compact orjson form for the repartition topic; round-trips through from_bytes.

        `record_ms`, the input record's timestamp, travels with the event in a bundle
        (whose own timestamp is one for all), so that latency is measured per event."""
        head: dict[str, Any] = {"v": REPARTITION_FORMAT, "k": self.key}
        if self.rule:
            head["r"] = self.rule
        if record_ms is not None:
            head["rt"] = record_ms
        return orjson.dumps({**head, **self.to_entry()})

    @classmethod
    def from_bytes(cls, raw: bytes) -> Event:
        """Raises FormatError on anything but a single-event repartition record."""
        return cls.from_dict(_parse(raw))

    @classmethod
    def from_dict(cls, data: Any) -> Event:
        """An event from a parsed repartition record (or a bundle's item); FormatError on
        anything but this version's."""
        if not isinstance(data, dict) or data.get("v") != REPARTITION_FORMAT:
            version = data.get("v") if isinstance(data, dict) else type(data).__name__
            raise FormatError(
                f"repartition record format {version!r}, this worker reads {REPARTITION_FORMAT}"
            )
        try:
            topic, partition, offset = data["src"]
            event = cls(
                key=data["k"],
                timestamp_ms=data["t"],
                stages=tuple(data["st"]),
                digest=data["d"],
                source=Source(topic, partition, offset),
                original=data["o"],
                fields=data["f"],
                original_bytes=data.get("ob", 0),
                trimmed=tuple(data.get("tr", ())),
                tiebreaker=data.get("tb"),
                rule=data.get("r", ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"repartition record lacks or mistypes {exc}") from None
        checks = (
            isinstance(event.key, str),
            type(event.timestamp_ms) is int,
            all(type(stage) is int for stage in event.stages) and bool(event.stages),
            isinstance(event.digest, str),
            isinstance(topic, str) and type(partition) is int and type(offset) is int,
            isinstance(event.fields, dict),
            event.original is None or isinstance(event.original, dict),
            event.tiebreaker is None or type(event.tiebreaker) in (int, float, str),
            isinstance(event.rule, str),
        )
        if not all(checks):
            raise FormatError("repartition record has a field of the wrong type")
        return event
