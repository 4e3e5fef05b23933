"""The records that flow between decode() and process(), and through the repartition topic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson


class Source(NamedTuple):
    """Where a record came from: Kafka coordinates, or (file name, 0, line number)."""

    topic: str
    partition: int
    offset: int


class Reject(NamedTuple):
    """A malformed record: `reason` is a short code ("not_json"), `detail` says more."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Event:
    """A record that matches at least one stage and has a join key.

    `fields` holds the normalised (ECS) values the rule read and the alert reports, so the
    alert never needs to normalise again; `digest` is the sha256 of the raw record bytes and
    identifies exact duplicates wherever the record was read from.
    """

    key: str
    timestamp_ms: int
    stages: tuple[int, ...]
    digest: str
    source: Source
    doc: dict[str, Any]
    fields: dict[str, Any]

    def to_state(self) -> dict[str, Any]:
        """A JSON-compatible dict (state stores and the repartition topic hold this)."""
        return {
            "k": self.key,
            "t": self.timestamp_ms,
            "st": list(self.stages),
            "d": self.digest,
            "src": [self.source.topic, self.source.partition, self.source.offset],
            "f": self.fields,
            "doc": self.doc,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Event:
        topic, partition, offset = data["src"]
        return cls(
            key=data["k"],
            timestamp_ms=data["t"],
            stages=tuple(data["st"]),
            digest=data["d"],
            source=Source(topic, partition, offset),
            doc=data["doc"],
            fields=data["f"],
        )

    def to_bytes(self) -> bytes:
        """Compact orjson form for the repartition topic; round-trips through from_bytes."""
        return orjson.dumps(self.to_state())

    @classmethod
    def from_bytes(cls, raw: bytes) -> Event:
        return cls.from_state(orjson.loads(raw))
