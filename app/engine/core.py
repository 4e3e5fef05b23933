"""The engine both `seqwatch detect` and the Faust worker drive, so they cannot disagree.

`decode()` turns raw record bytes into an Event (or a Reject, or None for records that
cannot match); `process()` applies an Event to the state of its scope and returns alerts.
No I/O, no Kafka: the callers own reading, writing and committing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import orjson

from app.engine.alert import ALERT_FIELDS, build_alert
from app.engine.compile import FieldRef, _as_text
from app.engine.event import Decoded, Event, Reject, Source
from app.engine.limits import DEFAULT_LIMITS, Limits
from app.engine.mapping import Mapping
from app.engine.normalise import View
from app.engine.ordered import OrderedMatcher
from app.engine.prefilter import Prefilter
from app.engine.rule import Rule
from app.engine.scan import BlockScanner
from app.engine.sequence import Matcher, Stats
from app.engine.settings import EngineSettings
from app.engine.state import MemoryState, StateStore
from app.engine.trim import bound_fields, bound_original

MAX_EVENT_BYTES = 1_048_576


def join_key_values(key: str) -> list[str | None]:
    """The values of a join key as `Engine._keys_of` encoded it (see there)."""
    return orjson.loads(key) if key.startswith("[") else [key]


class _KeyTooLong(Exception):
    """A join key value past `Limits.key_chars`: Elasticsearch would not index it."""


def check_record(raw: bytes, max_bytes: int) -> bytes | Reject:
    """The record's JSON text stripped, or why it cannot be a JSON object (cheap checks)."""
    if len(raw) > max_bytes:
        return Reject("too_large", f"{len(raw)} bytes > {max_bytes}")
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Reject("not_utf8", str(exc))
    body = raw.strip()
    if not body:
        return Reject("empty", "empty record")
    if body[0] != 0x7B or body[-1] != 0x7D:  # "{" ... "}"
        return _classify(body)
    return body


def parse_record(body: bytes) -> dict[str, Any] | Reject:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return Reject("not_json", str(exc))
    if not isinstance(doc, dict):  # pragma: no cover - excluded by the brace check
        return Reject("not_object", type(doc).__name__)
    return doc


def _classify(body: bytes) -> Reject:
    """Why `body` is not a JSON object (only called on the failure path)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return Reject("not_json", str(exc))
    return Reject("not_object", f"JSON {type(value).__name__}, not an object")


class Engine(BlockScanner):
    """Rule + semantics knobs; the state lives outside, in a StateStore per caller.

    `ttl_ms` bounds both how far apart a pair may be (with the rule's `maxspan`, whichever
    is shorter) and how long state is kept (TTL + lateness past the scope's watermark).
    The watermark is the minimum over the scope's inputs (Event.source topic/partition);
    an input lagging the most advanced one by more than `source_skew_ms` is ignored.
    """

    def __init__(
        self,
        rule: Rule,
        ttl_ms: int = 540_000,
        lateness_ms: int = 60_000,
        alert_cap: int = 100,
        cap_window_ms: int = 300_000,
        *,
        source_skew_ms: int = 3_600_000,
        max_event_bytes: int = MAX_EVENT_BYTES,
        prefilter: bool = True,
        clock: Callable[[], float] = time.time,
        limits: Limits = DEFAULT_LIMITS,
        tiebreaker: str | None = "event.sequence",
        idle_ms: int | None = None,
        mapping: Mapping | None = None,
    ) -> None:
        if ttl_ms <= 0:
            raise ValueError("ttl_ms must be positive")
        if lateness_ms < 0 or alert_cap < 0 or cap_window_ms < 0:
            raise ValueError("lateness_ms, alert_cap and cap_window_ms must not be negative")
        self.rule = rule
        self.ttl_ms = ttl_ms
        self.lateness_ms = lateness_ms
        self.alert_cap = alert_cap
        self.cap_window_ms = cap_window_ms
        self.max_event_bytes = max_event_bytes
        self.clock = clock
        self.limits = limits
        compiled = rule.compiled
        self.span_ms = min(ttl_ms, compiled.maxspan_ms) if compiled.maxspan_ms else ttl_ms
        matchable = compiled.matchable
        self._predicates = tuple(stage.predicate for stage in matchable)
        self._by_category = tuple(
            (stage.category, stage.condition or stage.predicate) for stage in matchable
        )
        self._keys = compiled.keys
        # Stages that join on the same fields share one key computation.
        self._stage_keys = tuple(stage.keys for stage in matchable)
        self.is_event = compiled.is_event
        """An event rule: every matching event alerts, without join keys or key state."""
        self.is_pair = compiled.is_pair
        # A stage's keys start with the sequence's `by` fields.
        self._key_paths = frozenset(ref.path for stage in matchable for ref in stage.keys)
        self._capture = tuple(
            FieldRef.of(path) for path in sorted({*compiled.fields, *ALERT_FIELDS})
        )
        self.tiebreaker = FieldRef.of(tiebreaker) if tiebreaker else None
        self.mapping = mapping
        """The index mapping records are read as (aliases, null_values), or None."""
        self.tag = ""
        """The rule's tag in a RuleSet of several (its events carry it); "" alone."""
        self.prefilter: Prefilter | None = Prefilter(compiled) if prefilter else None
        self.stats = Stats()
        matcher_options: dict[str, Any] = dict(
            span_ms=self.span_ms,
            ttl_ms=ttl_ms,
            lateness_ms=lateness_ms,
            alert_cap=alert_cap,
            cap_window_ms=cap_window_ms,
            source_skew_ms=source_skew_ms,
            stats=self.stats,
            make_alert=self._make_alert,
            limits=limits,
            clock=clock,
        )
        self.is_ordered = not (self.is_event or self.is_pair)
        """A sequence run on the ordered matcher: held until the watermark, then matched
        in Elasticsearch's order (`ordered`); alerts wait for the lateness."""
        self._matcher: Matcher = (
            OrderedMatcher(compiled=compiled, idle_ms=idle_ms, **matcher_options)
            if self.is_ordered
            else Matcher(**matcher_options)
        )

    @classmethod
    def from_settings(cls, rule: Rule, settings: EngineSettings, **options: Any) -> Engine:
        """The engine `seqwatch detect` and the worker both build, from one settings object."""
        return cls(
            rule,
            settings.ttl_ms,
            settings.lateness_ms,
            settings.alert_cap,
            settings.cap_window_ms,
            source_skew_ms=settings.source_skew_ms,
            max_event_bytes=settings.max_record_bytes,
            tiebreaker=settings.tiebreaker or None,
            idle_ms=settings.idle_ms,
            mapping=options.pop("mapping", None) or settings.load_mapping(),
            **options,
        )

    # as a rule set of one (the callers of `RuleSet` take an Engine too) ----------------
    @property
    def rules(self) -> tuple[Rule, ...]:
        return (self.rule,)

    def engine_of(self, event: Event) -> Engine:
        return self

    def totals(self) -> Stats:
        return self.stats

    def rule_stats(self) -> list[tuple[Rule, Stats]]:
        return [(self.rule, self.stats)]

    def checkpoint_stats(self) -> list[Stats]:
        return [self.stats.copy()]

    def restore_stats(self, checkpoint: list[Stats]) -> None:
        self.stats.restore(checkpoint[0])

    # decoding ------------------------------------------------------------------------------
    def decode(self, raw: bytes, source: Source) -> Decoded:
        """Raw record -> Event (or a tuple of Events, one per join key: see
        `event.Decoded`), Reject (malformed: dead-letter it) or None (cannot match).

        Irrelevant records are dropped by the prefilter before parsing; a record that passes
        the cheap checks (UTF-8, `{...}`) but cannot match is dropped even if its JSON is
        broken further inside, because finding out would cost the parse the prefilter saves.
        """
        stats = self.stats
        stats.received += 1
        body = check_record(raw, self.max_event_bytes)
        if type(body) is Reject:
            return self._reject(body)
        if self.prefilter is not None and not self.prefilter.may_match(body):
            stats.dropped += 1
            return None
        doc = parse_record(body)
        if type(doc) is Reject:
            return self._reject(doc)
        view = View(doc if self.mapping is None else self.mapping.apply(doc))
        return self.decode_doc(view, doc, body, source)

    def decode_doc(
        self,
        view: View,
        doc: dict[str, Any],
        body: bytes,
        source: Source,
        categories: frozenset[str] | None = None,
    ) -> Decoded:
        """decode() past the checks every rule shares: `doc` is `body` parsed (what the
        alert reports), `view` on it as the mapping reads it (a `RuleSet` parses a record
        once for all its rules, and gives the record's `event.category` values as text:
        each stage then tests only its condition)."""
        stats = self.stats
        if categories is None:
            stages = tuple(i for i, predicate in enumerate(self._predicates) if predicate(view))
        else:
            stages = tuple(
                i
                for i, (category, condition) in enumerate(self._by_category)
                if (category is None or category in categories) and condition(view)
            )
        if not stages:
            stats.dropped += 1
            return None
        try:
            keyed = self._keyed_stages(view, stages)
        except _KeyTooLong:
            stats.key_too_long += 1
            return None
        if not keyed:
            stats.no_key += 1
            return None
        key = next(iter(keyed))
        timestamp = view.timestamp_ms()
        if timestamp is None:
            return self._reject(Reject("bad_timestamp", f"cannot read event time of {key}"))
        ahead = timestamp - int(self.clock() * 1000)
        if ahead > self.limits.max_future_ms:
            return self._reject(
                Reject(
                    "future_timestamp",
                    f"event time of {key} is {ahead / 1000:.0f} s ahead of the clock"
                    f" (at most {self.limits.max_future_ms / 1000:.0f} s)",
                )
            )
        captured: dict[str, Any] = {}
        for ref in self._capture:
            values = view.values(ref.path, ref.parts)
            if values:
                captured[ref.path] = values[0] if len(values) == 1 else values
        fields, trimmed = bound_fields(captured, self._key_paths, self.limits)
        original = bound_original(doc, len(body), self.limits)
        if trimmed:
            stats.trim("fields")
        if original is None:
            stats.trim("original")
        stats.decoded += 1
        tiebreaker = None
        if self.tiebreaker is not None:
            found = view.values(self.tiebreaker.path, self.tiebreaker.parts)
            if found and type(found[0]) in (int, float, str):
                tiebreaker = found[0]
        digest = hashlib.sha256(body).hexdigest()
        events = tuple(
            Event(
                key=key,
                timestamp_ms=timestamp,
                stages=key_stages,
                digest=digest,
                source=source,
                original=original,
                fields=fields,
                original_bytes=len(body),
                trimmed=trimmed,
                tiebreaker=tiebreaker,
                rule=self.tag,
            )
            for key, key_stages in keyed.items()
        )
        return events[0] if len(events) == 1 else events

    def _keyed_stages(self, view: View, stages: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """{join key: the matched stages that join under it}; empty without any key.

        As Elasticsearch (8.6+) joins a multi-valued key field on each of its values, an
        event joins under every combination of its key fields' values (at most
        `Limits.key_fanout`); a missing `?field` is null and joins other nulls, a missing
        plain field gives no key. Raises _KeyTooLong past `key_chars`.
        """
        first = self._stage_keys[stages[0]]
        if len(stages) == 1 or all(self._stage_keys[s] == first for s in stages):
            return dict.fromkeys(self._keys_of(view, first), stages)
        out: dict[str, list[int]] = {}
        cache: dict[tuple[FieldRef, ...], list[str]] = {}
        for stage in stages:
            refs = self._stage_keys[stage]
            keys = cache.get(refs)
            if keys is None:
                keys = cache[refs] = self._keys_of(view, refs)
            for key in keys:
                out.setdefault(key, []).append(stage)
        return {key: tuple(found) for key, found in out.items()}

    def _keys_of(self, view: View, refs: tuple[FieldRef, ...]) -> list[str]:
        if not refs:
            return [""]  # an event rule, or a sequence without `by`: nothing to join on
        choices: list[list[str | None]] = []
        for ref in refs:
            texts: list[str | None] = []
            for value in view.values(ref.path, ref.parts):
                text = _as_text(value)
                if text is None:
                    continue
                if len(text) > self.limits.key_chars:
                    raise _KeyTooLong
                if text not in texts:
                    texts.append(text)
            if not texts:
                if not ref.optional:
                    return []
                texts.append(None)
            choices.append(texts)
        fanout = self.limits.key_fanout
        if len(choices) == 1:
            # One field: a value is its own key (a process.entity_id stays as it is), a
            # list form only for null and for values that could be mistaken for one.
            keys = [
                t if t is not None and not t.startswith("[") else orjson.dumps([t]).decode()
                for t in choices[0]
            ]
        else:
            combos: list[list[str | None]] = [[]]
            for texts in choices:
                combos = [[*c, t] for c in combos for t in texts][: fanout + 1]
            keys = [orjson.dumps(c).decode() for c in combos]
        if len(keys) > fanout:
            self.stats.trim("key_fanout")  # joins under the first `fanout` keys only
            del keys[fanout:]
        return keys

    def _reject(self, reject: Reject) -> Reject:
        self.stats.reject(reject.reason)
        return reject

    # matching ------------------------------------------------------------------------------
    def process(self, event: Event, state: StateStore, scope: str = "0") -> list[dict[str, Any]]:
        """Apply `event` to `state`; alerts completed by it, possibly none.

        `scope` is the partition the event was read from in the keyed stream: watermark,
        expiry and the alert cap are per scope, and expiry deletes only keys of that scope.
        """
        if self.is_event:
            return self._matcher.process_event(event, state, scope)
        return self._matcher.process(event, state, scope)

    def tick(self, state: StateStore, scope: str, wall_ms: int) -> list[dict[str, Any]]:
        """The wall clock, for a scope that may have had no events for a while: an ordered
        sequence's scope idle for the lateness releases what it holds (see `ordered`)."""
        if isinstance(self._matcher, OrderedMatcher):
            return self._matcher.tick(state, scope, wall_ms)
        return []

    def finish(self, state: MemoryState, scope: str = "0") -> list[dict[str, Any]]:
        """The input has ended (`seqwatch detect`): alerts still held for the watermark."""
        if isinstance(self._matcher, OrderedMatcher):
            return self._matcher.finish(state, scope)
        return []

    def end_source(self, state: StateStore, topic: str, partition: int, scope: str = "0") -> None:
        """An input (topic partition, or file) has ended: it stops holding the watermark.

        `seqwatch detect` calls it at the end of each file, so files given in any order
        behave like topics replayed one after another into the same keyed stream.
        """
        self._matcher.end_source(state, scope, topic, partition)

    # bounds ------------------------------------------------------------------------------
    @property
    def max_alert_bytes(self) -> int:
        """The largest alert this engine can produce (the alerts topic must take it)."""
        rule = self.rule
        meta = orjson.dumps(
            [
                rule.rule_id,
                rule.name,
                rule.description,
                rule.query,
                rule.tags,
                rule.threat,
                rule.author,
                rule.license,
                rule.severity,
                rule.risk_score,
                rule.version,
            ]
        )
        keys = self._key_width
        # the rule's metadata twice (rule.*, kibana.alert.*), the key in the reason and
        # at the top level
        rule_bytes = 2 * len(meta) + 2 * self.limits.key_bytes(keys)
        stages = len(self.rule.compiled.stages)
        return self.limits.alert_bytes(rule_bytes, stages=stages, key_fields=self._key_width)

    @property
    def max_event_bytes_out(self) -> int:
        """The largest repartition record value (an event as `Event.to_bytes` writes it)."""
        width = self._key_width
        return self.limits.entry_bytes(width) + self.limits.key_bytes(width)

    @property
    def max_state_bytes(self) -> int:
        """The largest value the engine writes to its state (a changelog record value)."""
        compiled = self.rule.compiled
        if self.is_ordered:
            return self.limits.largest_value(self._key_width, ordered_stages=len(compiled.positive))
        return self.limits.largest_value(self._key_width)

    @property
    def _key_width(self) -> int:
        """Fields in the longest join key (sequence `by` plus a stage's own)."""
        return max([len(self._keys), *(len(keys) for keys in self._stage_keys)])

    def _make_alert(
        self, entries: list[dict[str, Any] | None], scope: str, key: str | None = None
    ) -> dict[str, Any]:
        first = next(e for e in entries if e is not None)
        key_fields = {ref.path: first["f"].get(ref.path) for ref in self._keys}
        now_ms = int(self.clock() * 1000)
        alert = build_alert(self.rule, key_fields, entries, now_ms, scope)
        if key:
            alert["seqwatch"]["join_keys"] = join_key_values(key)
        return alert

    @staticmethod
    def alert_bytes(alert: dict[str, Any]) -> bytes:
        """The alert as the alerts topic and `seqwatch detect` carry it."""
        return orjson.dumps(alert)

    @staticmethod
    def alert_key(alert: dict[str, Any]) -> bytes:
        """The alerts topic key: process.entity_id (the join key), as UTF-8."""
        entity = alert.get("process", {}).get("entity_id")
        return str(entity if entity is not None else alert["alert"]["id"]).encode()
