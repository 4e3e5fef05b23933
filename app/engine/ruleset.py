"""Many rules in one pass: each record is checked, prefiltered and parsed once for all.

A `RuleSet` holds an `Engine` per rule. A record passes the cheap checks and the
union of the rules' prefilters once, is parsed once, and is offered only to the rules
that can match it: those with a stage of one of its `event.category` values (or a stage
of any category) whose own fragments occur in it. Each rule then keys its events as it
joins them, and its events carry its tag, so that the state stage hands each to its
rule. State, alert cap and counters are the rule's own: its scope in the state store is
the partition plus its tag (`<partition>.<tag>`); with a single rule the tag is empty and
the layout is the single-rule one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from app.engine.core import Engine, check_record, parse_record
from app.engine.event import Decoded, Event, Reject, Source
from app.engine.normalise import View
from app.engine.prefilter import Prefilter
from app.engine.rule import Rule
from app.engine.scan import BlockScanner
from app.engine.sequence import Stats
from app.engine.settings import EngineSettings
from app.engine.state import MemoryState, StateStore

_CATEGORY = ("event", "category")


def rule_tag(rule: Rule) -> str:
    """A short stable name of the rule in state keys and repartition records."""
    return hashlib.sha256(rule.rule_id.encode()).hexdigest()[:10]


class RuleSet(BlockScanner):
    """The engine of a worker or of `seqwatch detect`: one or more rules."""

    def __init__(self, rules: Sequence[Rule], settings: EngineSettings, **options: Any) -> None:
        if not rules:
            raise ValueError("a rule set needs at least one rule")
        self.engines = tuple(Engine.from_settings(rule, settings, **options) for rule in rules)
        tags = [""] if len(rules) == 1 else [rule_tag(rule) for rule in rules]
        if len(set(tags)) != len(tags):
            seen: dict[str, str] = {}
            for rule, tag in zip(rules, tags, strict=True):
                if tag in seen:
                    raise ValueError(f"two rules have the rule_id {rule.rule_id!r}")
                seen[tag] = rule.rule_id
        for engine, tag in zip(self.engines, tags, strict=True):
            engine.tag = tag
        self.by_tag = {engine.tag: engine for engine in self.engines}
        self.max_event_bytes = settings.max_record_bytes
        self.stats = self.engines[0].stats if len(self.engines) == 1 else Stats()
        """Counters of the shared steps (received, dropped, rejected by the checks); a
        single rule's own (it does every step itself)."""
        prefilters = [engine.prefilter for engine in self.engines]
        self.prefilter = (
            Prefilter.union([p for p in prefilters if p is not None])
            if all(p is not None for p in prefilters)
            else None
        )
        self._any: list[Engine] = []
        self._by_category: dict[str, list[Engine]] = {}
        for engine in self.engines:
            categories = {stage.category for stage in engine.rule.compiled.matchable}
            if None in categories:
                self._any.append(engine)
                continue
            for category in categories:
                self._by_category.setdefault(str(category), []).append(engine)

    # -- what callers ask ----------------------------------------------------------------
    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(engine.rule for engine in self.engines)

    @property
    def is_ordered(self) -> bool:
        """Whether a rule holds events for the watermark (the ingest then sends ticks)."""
        return any(engine.is_ordered for engine in self.engines)

    @property
    def is_event(self) -> bool:
        """Whether every rule is an event rule (no state stage work at all)."""
        return all(engine.is_event for engine in self.engines)

    def engine_of(self, event: Event) -> Engine:
        return self.by_tag[event.rule]

    def totals(self) -> Stats:
        """Every counter, summed over the shared steps and the rules."""
        if len(self.engines) == 1:
            return self.engines[0].stats
        total = self.stats.copy()
        for engine in self.engines:
            _add(total, engine.stats)
        return total

    def rule_stats(self) -> list[tuple[Rule, Stats]]:
        return [(engine.rule, engine.stats) for engine in self.engines]

    def checkpoint_stats(self) -> list[Stats]:
        return [self.stats.copy(), *(engine.stats.copy() for engine in self.engines)]

    def restore_stats(self, checkpoint: list[Stats]) -> None:
        self.stats.restore(checkpoint[0])
        for engine, stats in zip(self.engines, checkpoint[1:], strict=True):
            engine.stats.restore(stats)

    # -- decoding ------------------------------------------------------------------------
    def decode(self, raw: bytes, source: Source) -> Decoded:
        """Engine.decode for every rule at once (see the module doc)."""
        if len(self.engines) == 1:
            return self.engines[0].decode(raw, source)  # which counts it
        stats = self.stats
        stats.received += 1
        body = check_record(raw, self.max_event_bytes)
        if type(body) is Reject:
            stats.reject(body.reason)
            return body
        if self.prefilter is not None and not self.prefilter.may_match(body):
            stats.dropped += 1
            return None
        doc = parse_record(body)
        if type(doc) is Reject:
            stats.reject(doc.reason)
            return doc
        view = View(doc)
        candidates = self._candidates(view)
        low = body.lower() if candidates else b""
        out: list[Event] = []
        for engine in candidates:
            prefilter = engine.prefilter
            if prefilter is not None and not prefilter.may_match(body, low):
                continue
            decoded = engine.decode_doc(view, doc, body, source)
            if decoded is None:
                continue
            if type(decoded) is Reject:
                return decoded  # a record every rule would refuse alike (its time)
            if type(decoded) is tuple:
                out.extend(decoded)
            else:
                out.append(decoded)
        if not out:
            stats.dropped += 1
            return None
        return out[0] if len(out) == 1 else tuple(out)

    def _candidates(self, view: View) -> list[Engine]:
        categories = view.values("event.category", _CATEGORY)
        if not categories:
            return self._any
        found: list[Engine] = []
        for category in categories:
            engines = self._by_category.get(str(category)) if isinstance(category, str) else None
            if engines:
                found.extend(engines)
        if len(categories) > 1 and found:
            found = list(dict.fromkeys(found))  # an event of two categories: each rule once
        return [*found, *self._any] if self._any else found

    # -- matching ------------------------------------------------------------------------
    def process(self, event: Event, state: StateStore, scope: str = "0") -> list[dict[str, Any]]:
        engine = self.by_tag[event.rule]
        return engine.process(event, state, _scope(scope, engine.tag))

    def tick(self, state: StateStore, scope: str, wall_ms: int) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = []
        for engine in self.engines:
            if engine.is_ordered:
                alerts.extend(engine.tick(state, _scope(scope, engine.tag), wall_ms))
        return alerts

    def finish(self, state: MemoryState, scope: str = "0") -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = []
        for engine in self.engines:
            alerts.extend(engine.finish(state, _scope(scope, engine.tag)))
        return alerts

    def end_source(self, state: StateStore, topic: str, partition: int, scope: str = "0") -> None:
        for engine in self.engines:
            engine.end_source(state, topic, partition, _scope(scope, engine.tag))

    # -- output and bounds ---------------------------------------------------------------
    alert_bytes = staticmethod(Engine.alert_bytes)
    alert_key = staticmethod(Engine.alert_key)

    @property
    def max_alert_bytes(self) -> int:
        return max(engine.max_alert_bytes for engine in self.engines)

    @property
    def max_event_bytes_out(self) -> int:
        return max(engine.max_event_bytes_out for engine in self.engines) + 32

    @property
    def max_state_bytes(self) -> int:
        return max(engine.max_state_bytes for engine in self.engines)


def _scope(scope: str, tag: str) -> str:
    return f"{scope}.{tag}" if tag else scope


def _add(total: Stats, other: Stats) -> None:
    for name, value in vars(other).items():
        if isinstance(value, int):
            setattr(total, name, getattr(total, name) + value)
        elif isinstance(value, dict):
            into = getattr(total, name)
            for k, v in value.items():
                into[k] = into.get(k, 0) + v


def engines_of(rules: Iterable[Rule], settings: EngineSettings, **options: Any) -> RuleSet:
    return RuleSet(list(rules), settings, **options)
