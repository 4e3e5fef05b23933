"""Sequences of any shape, matched in event order exactly as Elasticsearch matches them.

Elasticsearch sorts the events by (timestamp, tiebreaker, index order) and runs each stage
over them (`SequenceMatcher`): a stage-k event extends the latest pending sequence of its
key waiting at stage k-1 and discards the older ones (`OrdinalGroup.trimBefore`); a
stage-0 event starts a new one; `until` discards a key's pending sequences; `maxspan`
bounds first to last event. Fed one event at a time in that order, trying its stages
from the last to the first (so it never extends a sequence it has just started), this is
the same computation, and only the latest pending sequence of each stage can ever be
extended: a key's state is one slot per stage (`KeySequences`).

Events reach a stream out of order, so the operator (`OrderedMatcher`) holds each key's
events until its scope's watermark passes their time plus the lateness, as Flink CEP
does, then feeds them in order: alerts wait for the lateness, and the answer is
Elasticsearch's for any arrival order within it. An event later than that is fed when it
arrives (counted as `late`). `seqwatch detect` releases everything at the end of input.

Missing-event stages (`![...]`) are decided when the sequence's positive events are all
known, from the latest event of each missing stage (middle and leading stages), or once
`maxspan` has passed after the first event (trailing stages).

Key state (JSON), `k|<scope>|<key>`: {"v": layout version, "q": events waiting for the
watermark, "p": pending sequence per stage slot, "m": {missing stage: [time, ordinal of
its latest event]}, "w": complete sequences waiting for a trailing missing stage to be
decided, "seen": duplicate markers, "lo": ordinal of the last event fed, "ix"/"rx": the
expiry and release index buckets}.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.engine.compile import CompiledQuery
from app.engine.event import Event
from app.engine.sequence import Entry, Matcher
from app.engine.state import MemoryState, StateStore

LAYOUT_VERSION = 1
"""Version of the ordered key state (`"v"`); a worker refuses state of another version."""

Ordinal = tuple[int, int, float, str, str]


def ordinal(entry: Entry) -> Ordinal:
    """Elasticsearch's order: timestamp, then the tiebreaker (numbers before strings,
    missing last), then the record digest where Elasticsearch uses index order (a stream
    has none that survives a replay; the digest gives the same order every time)."""
    tb = entry.get("tb")
    if tb is None:
        return (entry["t"], 2, 0.0, "", entry["d"])
    if isinstance(tb, str):
        return (entry["t"], 1, 0.0, tb, entry["d"])
    return (entry["t"], 0, float(tb), "", entry["d"])


def _after(a: list[Any] | None, b: Ordinal) -> bool:
    """Whether stored ordinal `a` comes after `b`."""
    return a is not None and tuple(a) > b


@dataclass(frozen=True)
class Plan:
    """The shape of a sequence, from its compiled query."""

    stages: int
    positive: tuple[int, ...]
    """Indices of the positive stages, in order."""
    gaps: tuple[tuple[int, ...], ...]
    """gaps[j]: the missing stages just before positive stage j; gaps[-1]: after the last."""
    until: int | None
    maxspan_ms: int | None

    @classmethod
    def of(cls, compiled: CompiledQuery) -> Plan:
        positive = tuple(s.index for s in compiled.stages if not s.missing)
        gaps: list[list[int]] = [[] for _ in range(len(positive) + 1)]
        slot = 0
        for stage in compiled.stages:
            if stage.missing:
                gaps[slot].append(stage.index)
            else:
                slot += 1
        until = compiled.until.index if compiled.until is not None else None
        return cls(
            len(compiled.stages),
            positive,
            tuple(tuple(g) for g in gaps),
            until,
            compiled.maxspan_ms,
        )

    @property
    def trailing(self) -> tuple[int, ...]:
        return self.gaps[-1]


Emit = Callable[[list[Entry | None]], None]
"""Receives a complete sequence: an entry per stage, None for a missing stage."""


class KeySequences:
    """The sequence state machine of one key: pure, over a JSON-compatible dict."""

    def __init__(
        self,
        plan: Plan,
        span_ms: int,
        waiting: int = 4,
        trimmed: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self.plan = plan
        self.span = span_ms
        self.slots = max(len(plan.positive) - 1, 0)
        self.waiting = waiting
        self.trimmed = trimmed

    def new(self) -> dict[str, Any]:
        return {"v": LAYOUT_VERSION, "q": [], "p": [None] * self.slots, "m": {}, "w": []}

    def feed(self, ks: dict[str, Any], entry: Entry, emit: Emit) -> None:
        """Apply the next event of the key, in Elasticsearch's order."""
        plan = self.plan
        t = entry["t"]
        stages = set(entry["st"])
        self.decide(ks, t, emit)
        if plan.trailing and ks["w"] and any(m in stages for m in plan.trailing):
            self._trailing_event(ks, t, emit)
        slots: list[Any] = ks["p"]
        positive = plan.positive
        for j in range(len(positive) - 1, -1, -1):
            if positive[j] not in stages:
                continue
            if j == 0:
                seq: dict[str, Any] = {
                    "e": [entry],
                    "t0": t,
                    "L": self._before(ks, plan.gaps[0], t),
                }
            else:
                prev = slots[j - 1]
                if prev is None:
                    continue
                slots[j - 1] = None  # the latest pending one: older ones were dropped
                if t - prev["t0"] > self.span:
                    continue
                between = self._before(ks, plan.gaps[j], t)
                if between is not None and between > prev["e"][-1]["t"]:
                    continue  # a missing-stage event lies strictly between the two
                seq = {"e": [*prev["e"], entry], "t0": prev["t0"], "L": prev["L"]}
            if j == len(positive) - 1:
                self._complete(ks, seq, t, emit)
            else:
                slots[j] = seq
        if plan.until is not None and plan.until in stages:
            # Pending sequences end here, including those this event just extended or
            # started (their next step would find `until` at or after their last event);
            # one it completed stands.
            ks["p"] = [None] * self.slots
        for gap in plan.gaps:
            for m in gap:
                if m in stages:
                    times = ks["m"].get(str(m), [])
                    if not times or times[0] != t:
                        ks["m"][str(m)] = [t, *times[:1]]

    @staticmethod
    def _before(ks: dict[str, Any], gap: tuple[int, ...], t: int) -> int | None:
        """The latest time before `t` (strictly, in ms) of an event of a stage in `gap`."""
        best: int | None = None
        for m in gap:
            for x in ks["m"].get(str(m), ()):
                if x < t:
                    if best is None or x > best:
                        best = x
                    break
        return best

    def _complete(self, ks: dict[str, Any], seq: dict[str, Any], t: int, emit: Emit) -> None:
        """The positive events are all there; the leading and trailing gaps decide.

        As Elasticsearch: the nearest event of a leading gap discards the sequence when it
        lies within `maxspan` of the last event; of a trailing gap, within `maxspan` of
        the first; with both gaps, when the nearest two lie within `maxspan` of each other.
        """
        plan = self.plan
        lead = seq["L"] if plan.gaps[0] else None
        if not plan.trailing:
            if lead is None or t - lead > self.span:
                emit(self._with_missing(seq["e"]))
            return
        if plan.gaps[0] and lead is None:
            emit(self._with_missing(seq["e"]))  # no leading event: the pair cannot exist
            return
        anchor = lead if lead is not None else seq["t0"]
        ks["w"].append({"e": seq["e"], "t0": seq["t0"], "lt": t, "a": anchor})
        if len(ks["w"]) > self.waiting:
            self.trimmed("waiting")
            emit(self._with_missing(ks["w"].pop(0)["e"]))

    def _trailing_event(self, ks: dict[str, Any], t: int, emit: Emit) -> None:
        """An event of a trailing gap: the nearest after each waiting sequence decides it."""
        keep = []
        for w in ks["w"]:
            if t <= w["lt"]:
                keep.append(w)  # not strictly after the sequence's last event
            elif t - w["a"] > self.span:
                emit(self._with_missing(w["e"]))  # the nearest one is too far: it stands
        ks["w"] = keep

    def decide(self, ks: dict[str, Any], now: int | None, emit: Emit) -> None:
        """Emit the waiting sequences no trailing event can discard any more by `now`
        (None: the input has ended, nothing more can arrive)."""
        waiting = ks["w"]
        if not waiting:
            return
        keep = []
        for w in waiting:
            if now is None or now - w["a"] > self.span:
                emit(self._with_missing(w["e"]))
            else:
                keep.append(w)
        ks["w"] = keep

    def _with_missing(self, entries: list[Entry]) -> list[Entry | None]:
        out: list[Entry | None] = [None] * self.plan.stages
        for index, entry in zip(self.plan.positive, entries, strict=True):
            out[index] = entry
        return out

    def earliest(self, ks: dict[str, Any]) -> int | None:
        """The earliest time this state still needs (for expiry)."""
        times = [e["t"] for e in ks["q"]]
        times += [s["t0"] for s in ks["p"] if s is not None]
        times += [w["a"] for w in ks["w"]]
        times += [m[0] for m in ks["m"].values()]
        return min(times) if times else None

    def expire(self, ks: dict[str, Any], cutoff: int) -> int:
        """Drop what is older than `cutoff`; returns how many events were dropped."""
        dropped = 0
        slots = ks["p"]
        for i, seq in enumerate(slots):
            if seq is not None and seq["t0"] < cutoff:
                slots[i] = None
                dropped += 1
        ks["m"] = {m: v for m, v in ks["m"].items() if v[0] >= cutoff}
        waiting = [w for w in ks["w"] if w["a"] >= cutoff]
        dropped += len(ks["w"]) - len(waiting)
        ks["w"] = waiting
        return dropped


class OrderedMatcher(Matcher):
    """The operator over `KeySequences`: holds events until the watermark, feeds them."""

    def __init__(
        self, *, compiled: CompiledQuery, idle_ms: int | None = None, **options: Any
    ) -> None:
        super().__init__(**options)
        self.idle = idle_ms if idle_ms is not None else self.lateness
        self.plan = Plan.of(compiled)
        self.machine = KeySequences(
            self.plan, self.span, self.limits.waiting_sequences, self.stats.trim
        )

    def process(self, event: Event, state: StateStore, scope: str) -> list[dict[str, Any]]:
        meta_key = f"m|{scope}"
        meta = state.get(meta_key) or _new_meta()
        t = event.timestamp_ms
        wm = meta["wm"]
        late = wm is not None and t < wm - self.lateness
        self._advance(meta, f"{event.source.topic}#{event.source.partition}", t)
        cutoff = meta["wm"] - self.ttl - self.lateness
        alerts: list[dict[str, Any]] = []
        # What the new watermark releases goes first: expiry must never find held events.
        self._release(state, scope, meta, alerts)
        self._expire(state, scope, meta, cutoff)
        key_key = f"k|{scope}|{event.key}"
        ks = self._load(state, key_key)
        digest = event.digest
        if digest in ks["seen"] or any(e["d"] == digest for e in ks["q"]):
            self.stats.duplicates += 1
            state.set(meta_key, meta)
            return alerts
        entry = event.to_entry()
        ks["seen"][digest] = t
        self._bound_seen(ks)
        if late or _after(ks.get("lo"), ordinal(entry)):
            self.stats.late += 1
            self._feed(ks, entry, meta, scope, alerts, event.key)
        else:
            queue: list[Entry] = ks["q"]
            queue.append(entry)
            queue.sort(key=ordinal)
            while len(queue) > self.limits.buffered_events:
                self.stats.trim("buffer")
                self._feed(ks, queue.pop(0), meta, scope, alerts, event.key)
        self._release_key(ks, meta, scope, alerts, event.key)
        self._store(state, scope, meta, event.key, key_key, ks)
        meta["lw"] = int(self.clock() * 1000)
        state.set(meta_key, meta)
        return alerts

    def tick(self, state: StateStore, scope: str, wall_ms: int) -> list[dict[str, Any]]:
        """A scope without events for `idle` (default: the lateness) of wall time counts
        as caught up with the wall clock (Flink's idleness): its watermark moves to
        `wall_ms`, and what it holds is released as if an event of that time had arrived.
        A stream that goes quiet still alerts, one lateness after its last event, as a
        busy one does."""
        meta_key = f"m|{scope}"
        meta = state.get(meta_key)
        if meta is None or meta["wm"] is None or wall_ms - meta.get("lw", wall_ms) < self.idle:
            return []
        if meta["wm"] >= wall_ms:
            return []
        meta["wm"] = wall_ms
        alerts: list[dict[str, Any]] = []
        self._release(state, scope, meta, alerts)
        self._expire(state, scope, meta, wall_ms - self.ttl - self.lateness)
        state.set(meta_key, meta)
        return alerts

    def finish(self, state: MemoryState, scope: str) -> list[dict[str, Any]]:
        """The input has ended (`seqwatch detect`): feed every held event, decide all."""
        alerts: list[dict[str, Any]] = []
        meta_key = f"m|{scope}"
        meta = state.get(meta_key) or _new_meta()
        prefix = f"k|{scope}|"
        for key_key in sorted(k for k in state if k.startswith(prefix)):
            key = key_key[len(prefix) :]
            ks = self._load(state, key_key)
            for entry in ks["q"]:
                self._feed(ks, entry, meta, scope, alerts, key)
            ks["q"] = []
            self.machine.decide(
                ks, None, lambda seq, key=key: self._emit(seq, meta, scope, alerts, key)
            )
            state.set(key_key, ks)
        state.set(meta_key, meta)
        return alerts

    # -- internals ------------------------------------------------------------------------
    def _load(self, state: StateStore, key_key: str) -> dict[str, Any]:
        ks = state.get(key_key)
        if ks is None:
            ks = self.machine.new()
            ks["seen"] = {}
        elif ks.get("v") != LAYOUT_VERSION:
            raise ValueError(
                f"state of {key_key} has layout {ks.get('v')!r}, this engine reads"
                f" {LAYOUT_VERSION}: reset the state (docs/operations.md)"
            )
        return ks

    def _feed(
        self,
        ks: dict[str, Any],
        entry: Entry,
        meta: dict[str, Any],
        scope: str,
        alerts: list[dict[str, Any]],
        key: str,
    ) -> None:
        self.machine.feed(ks, entry, lambda seq: self._emit(seq, meta, scope, alerts, key))
        ks["lo"] = list(ordinal(entry))

    def _release_key(
        self,
        ks: dict[str, Any],
        meta: dict[str, Any],
        scope: str,
        alerts: list[dict[str, Any]],
        key: str,
    ) -> None:
        horizon = meta["wm"] - self.lateness
        queue: list[Entry] = ks["q"]
        while queue and queue[0]["t"] <= horizon:
            self._feed(ks, queue.pop(0), meta, scope, alerts, key)
        self.machine.decide(ks, horizon, lambda seq: self._emit(seq, meta, scope, alerts, key))

    def _release(
        self,
        state: StateStore,
        scope: str,
        meta: dict[str, Any],
        alerts: list[dict[str, Any]],
    ) -> None:
        """Feed the held events of every key the watermark has passed (release index)."""
        horizon = meta["wm"] - self.lateness
        buckets: list[int] = meta.setdefault("r", [])
        while buckets and buckets[0] * self.release_ms <= horizon:
            bucket = buckets.pop(0)
            for key in self._sweep(state, scope, bucket, "r"):
                key_key = f"k|{scope}|{key}"
                ks = state.get(key_key)
                if ks is None:
                    continue
                ks.pop("rx", None)
                self._release_key(ks, meta, scope, alerts, key)
                self._store(state, scope, meta, key, key_key, ks)

    @property
    def release_ms(self) -> int:
        """Width of a release bucket: alerts wait for the lateness plus at most this."""
        return max(100, self.lateness // 32)

    def _store(
        self,
        state: StateStore,
        scope: str,
        meta: dict[str, Any],
        key: str,
        key_key: str,
        ks: dict[str, Any],
        visited: int | None = None,
    ) -> None:
        """Index the key for release at its next due time, then store it as `Matcher`
        does (expiry index at its earliest time)."""
        due = self._due(ks)
        if due is not None:
            horizon = (meta["wm"] - self.lateness) // self.release_ms
            # Never far ahead (an event stamped ahead of the others is visited early and
            # indexed again): the meta value holds one number per bucket.
            bucket = min(-(-due // self.release_ms), horizon + self.limits.expiry_buckets)
            if ks.get("rx") is None or bucket < ks["rx"]:
                self._index(state, scope, meta, key, bucket, "r")
                ks["rx"] = bucket
        super()._store(state, scope, meta, key, key_key, ks, visited)

    def _due(self, ks: dict[str, Any]) -> int | None:
        """The event time at which the key next has work: a held event, or a waiting
        sequence's trailing maxspan running out."""
        times = [e["t"] for e in ks["q"][:1]]
        times += [w["a"] + self.span + 1 for w in ks["w"]]
        return min(times) if times else None

    def _earliest_time(self, ks: dict[str, Any]) -> int | None:  # type: ignore[override]
        times = [t for t in (self.machine.earliest(ks),) if t is not None]
        times += list(ks["seen"].values())
        return min(times) if times else None

    def _drop_expired(self, ks: dict[str, Any], cutoff: int) -> int:
        dropped = self.machine.expire(ks, cutoff)
        held = [e for e in ks["q"] if e["t"] >= cutoff]  # none: released before expiry
        dropped += len(ks["q"]) - len(held)
        ks["q"] = held
        return dropped


def _new_meta() -> dict[str, Any]:
    return {"wm": None, "src": {}, "x": [], "c": {}, "r": []}
