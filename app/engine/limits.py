"""Hard bounds on everything the engine stores or emits, whatever the input.

Kafka refuses a record larger than its topic's `max.message.bytes`, and a refused
changelog write or alert is a lost detection. So every value the engine hands to a
state store, the repartition topic or the alerts topic has a size known in advance:

- an event keeps the fields the rule and the alert read, each string cut to
  `field_chars` (ECS keyword fields use `ignore_above: 1024`), arrays to `field_values`
  elements, all of them to `fields_bytes`; the record as received only when it
  serialises to at most `original_bytes` (otherwise the alert references it by topic,
  partition and offset);
- a join key longer than `key_chars` is not a key, as in Elasticsearch, where
  `ignore_above` leaves such a value unindexed, so the event cannot join;
- a key's state holds at most `pending_starts` starts, `held_events` stage-2 events
  and `seen_markers` duplicate markers;
- the per-partition meta value holds at most `sources` inputs, `cap_buckets`
  alert-cap buckets and `expiry_buckets` expiry buckets (the bucket width grows with
  the retention horizon); the expiry index is paged at `index_page_bytes`.

`key_state_bytes()` and friends turn these into byte bounds; the tests check every
value written against them, and the worker sizes its internal topics from them.
"""

from __future__ import annotations

from dataclasses import dataclass

# Serialised size of one state entry besides its fields, original and key: time,
# stages, digest, source coordinates (a topic name is at most 249 characters), the
# names of trimmed fields and JSON punctuation.
_ENTRY_OVERHEAD = 1_536
# One duplicate marker: a 64-character digest, a time, punctuation.
_MARKER_BYTES = 96


@dataclass(frozen=True)
class Limits:
    field_chars: int = 1_024
    field_values: int = 16
    fields_bytes: int = 4_096
    original_bytes: int = 8_192
    key_chars: int = 1_024
    pending_starts: int = 4
    key_fanout: int = 16
    """Join keys one record joins under (combinations of multi-valued key fields)."""
    buffered_events: int = 16
    """Events a key of an ordered sequence holds until the watermark releases them; past
    that, the earliest are matched at once (counted as `trimmed{kind="buffer"}`)."""
    waiting_sequences: int = 4
    """Complete sequences a key holds until their trailing missing-event stage is decided;
    past that, the oldest alerts at once (`trimmed{kind="waiting"}`): an alert too many
    rather than one lost."""
    held_events: int = 4
    seen_markers: int = 32
    sources: int = 256
    cap_buckets: int = 64
    expiry_buckets: int = 256
    index_page_bytes: int = 32_768
    max_future_ms: int = 3_600_000
    """Events stamped further ahead of the clock are rejected (`future_timestamp`).

    Kafka refuses records stamped more than an hour ahead by default
    (`message.timestamp.after.max.ms`); an event that far ahead would otherwise sit in
    state until the clock reaches it, and move its partition's watermark ahead.
    """

    def key_bytes(self, key_fields: int = 1) -> int:
        """Largest join key in UTF-8 (JSON-escaped for composite keys)."""
        one = 6 * self.key_chars + 2  # worst case: every character a \\u escape
        return one if key_fields == 1 else key_fields * (one + 1) + 2

    def entry_bytes(self, key_fields: int = 1) -> int:
        """Largest serialised event, in state or on the repartition topic."""
        return (
            self.fields_bytes + self.original_bytes + self.key_bytes(key_fields) + _ENTRY_OVERHEAD
        )

    def key_state_bytes(self, key_fields: int = 1) -> int:
        """Largest state value of one join key."""
        entries = self.pending_starts + self.held_events
        return entries * self.entry_bytes(key_fields) + self.seen_markers * _MARKER_BYTES + 512

    def meta_bytes(self) -> int:
        """Largest per-partition meta value (watermark, inputs, expiry buckets, cap)."""
        buckets = 2 * (self.expiry_buckets + 8)  # the expiry and the release index
        return self.sources * 300 + self.cap_buckets * 40 + buckets * 24 + 512

    def alert_bytes(self, rule_bytes: int, stages: int = 2, key_fields: int = 1) -> int:
        """Largest alert: the rule's metadata, each stage's event, shared fields once more."""
        return rule_bytes + stages * self.entry_bytes(key_fields) + 2 * self.fields_bytes + 4_096

    def ordered_key_state_bytes(self, stages: int, key_fields: int = 1) -> int:
        """Largest state value of one join key of an ordered sequence of `stages` positive
        stages: held events, a pending sequence per slot, waiting complete sequences."""
        slots = sum(range(1, stages))  # slot k holds a sequence of k + 1 events
        entries = self.buffered_events + slots + self.waiting_sequences * stages
        return entries * self.entry_bytes(key_fields) + self.seen_markers * _MARKER_BYTES + 2048

    def largest_value(self, key_fields: int = 1, ordered_stages: int | None = None) -> int:
        """Largest value the engine writes to a state store (changelog record value)."""
        key = (
            self.key_state_bytes(key_fields)
            if ordered_stages is None
            else self.ordered_key_state_bytes(ordered_stages, key_fields)
        )
        return max(key, self.meta_bytes(), self.index_page_bytes + 1_024)


DEFAULT_LIMITS = Limits()
