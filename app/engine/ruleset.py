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
from collections.abc import Sequence
from typing import Any

import ahocorasick

from app.engine.compile import Anchor, _as_text
from app.engine.core import Engine, check_record, parse_record
from app.engine.event import Decoded, Event, Reject, Source
from app.engine.normalise import View
from app.engine.prefilter import ASCII_LOWERING, Prefilter
from app.engine.rule import Rule
from app.engine.scan import BlockScanner
from app.engine.sequence import Stats
from app.engine.settings import EngineSettings
from app.engine.state import MemoryState, StateStore

_CATEGORY = ("event", "category")
MIN_FRAGMENT = 3
"""Shortest fragment a rule's clause is indexed by (shorter ones are in most records)."""
_LOWERING = tuple(c.encode() for c in ASCII_LOWERING)


def rule_tag(rule: Rule) -> str:
    """A short stable name of the rule in state keys and repartition records."""
    return hashlib.sha256(rule.rule_id.encode()).hexdigest()[:10]


class RuleSet(BlockScanner):
    """The engine of a worker or of `seqwatch detect`: one or more rules."""

    def __init__(self, rules: Sequence[Rule], settings: EngineSettings, **options: Any) -> None:
        if not rules:
            raise ValueError("a rule set needs at least one rule")
        self.mapping = options.pop("mapping", None) or settings.load_mapping()
        self.engines = tuple(
            Engine.from_settings(rule, settings, mapping=self.mapping, **options) for rule in rules
        )
        tags = [""] if len(rules) == 1 else [rule_tag(rule) for rule in rules]
        if len(set(tags)) != len(tags):
            raise ValueError("two rules share a rule_id (load_rules keeps the first)")
        for engine, tag in zip(self.engines, tags, strict=True):
            engine.tag = tag
        self.by_tag = {engine.tag: engine for engine in self.engines}
        self.max_event_bytes = settings.max_record_bytes
        self.stats = self.engines[0].stats if len(self.engines) == 1 else Stats()
        """Counters of the shared steps (received, dropped, rejected by the checks); a
        single rule's own (it does every step itself)."""
        prefilters = [engine.prefilter for engine in self.engines]
        self.prefilter = (
            None
            if any(p is None for p in prefilters)
            else prefilters[0]
            if len(prefilters) == 1
            else Prefilter.union(prefilters)  # type: ignore[arg-type]
        )
        """Passes what any rule's prefilter passes (`seqwatch detect`'s block scan)."""
        # Which rules a record may match, in one pass over it: an Aho-Corasick automaton
        # finds every fragment any stage requires (`Node.clauses`); a rule is offered the
        # record when, for one of its stages, each clause has a fragment in it. A rule
        # with a stage that requires nothing is always offered. Then only the rules of the
        # record's categories remain.
        # Clauses with a fragment shorter than MIN_FRAGMENT are left out: nearly every
        # record has a ":" or an "i", and their matches were most of the automaton's work.
        numbers: dict[str, int] = {}
        stage_clauses: list[list[tuple[frozenset[int], ...]]] = []
        for engine in self.engines:
            stages = []
            for stage in engine.rule.compiled.matchable:
                stages.append(
                    tuple(
                        frozenset(numbers.setdefault(f, len(numbers)) for f in clause)
                        for clause in stage.clauses
                        if min(map(len, clause)) >= MIN_FRAGMENT
                    )
                )
            stage_clauses.append(stages)
        self._stage_clauses = stage_clauses
        # The value index: a rule each of whose stages names exact values of a field
        # (`Node.anchor`) is offered a parsed record only if one of them is there.
        self._anchors: dict[int, tuple[tuple[str | None, Anchor], ...]] = {}
        for i, engine in enumerate(self.engines):
            stages = engine.rule.compiled.matchable
            if len(self.engines) > 1 and all(stage.anchor is not None for stage in stages):
                self._anchors[i] = tuple((s.category, s.anchor) for s in stages)  # type: ignore[misc]
        self._always: frozenset[int] = frozenset(
            i for i, stages in enumerate(stage_clauses) if any(not c for c in stages)
        )
        # A rule is checked when a fragment of one clause of a stage is present (every
        # match meets each clause): the one of longest fragments, since most rules begin
        # with `host.os.type == "windows"`, which every Windows record meets.
        lengths = {number: len(fragment) for fragment, number in numbers.items()}
        owners: list[set[int]] = [set() for _ in numbers]
        for i, stages in enumerate(stage_clauses):
            if i not in self._always:
                for clauses in stages:
                    best = max(clauses, key=lambda c: (min(lengths[n] for n in c), -len(c)))
                    for number in best:
                        owners[number].add(i)
        self._owners = [frozenset(o) for o in owners]
        self._automaton = ahocorasick.Automaton()
        for fragment, number in numbers.items():
            self._automaton.add_word(fragment, number)
        if numbers:
            self._automaton.make_automaton()
        self._has_fragments = bool(numbers)
        any_category: set[int] = set()
        by_category: dict[str, set[int]] = {}
        for i, engine in enumerate(self.engines):
            categories = {stage.category for stage in engine.rule.compiled.matchable}
            if None in categories:
                any_category.add(i)
                continue
            for category in categories:
                by_category.setdefault(str(category), set()).add(i)
        self._any = frozenset(any_category)
        self._by_category = {c: frozenset(ids) | self._any for c, ids in by_category.items()}

    # -- what callers ask ----------------------------------------------------------------
    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(engine.rule for engine in self.engines)

    @property
    def is_ordered(self) -> bool:
        """Whether a rule holds events for the watermark (the ingest then sends ticks)."""
        return any(engine.is_ordered for engine in self.engines)

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
        low = body.lower()
        hits = self._hits(body, low)
        if not hits and not self._always:
            stats.dropped += 1
            return None
        doc = parse_record(body)
        if type(doc) is Reject:
            stats.reject(doc.reason)
            return doc
        view = View(doc if self.mapping is None else self.mapping.apply(doc))
        categories = frozenset(
            t for t in map(_as_text, view.values("event.category", _CATEGORY)) if t is not None
        )
        candidates = self._candidates(categories) & (hits | self._always)
        out: list[Event] = []
        engines = self.engines
        anchors = self._anchors
        texts: dict[str, frozenset[str]] = {}
        for index in sorted(candidates):
            if index in anchors and not _indexed(anchors[index], view, categories, texts):
                continue
            decoded = engines[index].decode_doc(view, doc, body, source, categories)
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

    def _hits(self, body: bytes, low: bytes) -> frozenset[int] | set[int]:
        """The rules whose prefilter passes the record (`low`: its bytes lower-cased)."""
        if b"\\u" in body or (not body.isascii() and any(c in body for c in _LOWERING)):
            # Escapes or characters that lower-case to ASCII: each rule's exact check.
            return {
                i
                for i, e in enumerate(self.engines)
                if i not in self._always and e.prefilter.may_match(body, low)  # type: ignore[union-attr]
            }
        if not self._has_fragments:
            return frozenset()
        present = {f for _, f in self._automaton.iter(low.decode("latin-1"))}
        owners = self._owners
        stage_clauses = self._stage_clauses
        return {
            i
            for i in set().union(*(owners[f] for f in present))
            if any(all(c & present for c in stage) for stage in stage_clauses[i])
        }

    def _candidates(self, categories: frozenset[str]) -> frozenset[int]:
        found = self._any
        for category in categories:
            found = found | self._by_category.get(category, frozenset())
        return found

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


def _indexed(
    stages: tuple[tuple[str | None, Anchor], ...],
    view: View,
    categories: frozenset[str],
    texts: dict[str, frozenset[str]],
) -> bool:
    """Whether a stage of these may match: its category is the record's and the record
    has one of its anchor's values. `texts`: each field's values, lower-cased, per record."""
    for category, anchor in stages:
        if category is not None and category not in categories:
            continue
        path = anchor.ref.path
        found = texts.get(path)
        if found is None:
            found = texts[path] = frozenset(
                t.lower()
                for t in map(_as_text, view.values(path, anchor.ref.parts))
                if t is not None  # "" is a value a condition may name
            )
        if not found.isdisjoint(anchor.values):
            return True
    return False


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
