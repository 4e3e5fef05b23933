"""The stateful two-stage matcher: Elasticsearch's sequence semantics, in event time.

Per join key, in sorted order Elasticsearch holds each stage-1 event as pending and pairs a
stage-2 event with the latest pending start at or before it, removing that start and all
older ones (`SequenceMatcher`, `OrdinalGroup.trimBefore`): one alert per start at most.
Events arrive out of order here, so a stage-2 event that finds no start is held too, and a
start pairs with the earliest held stage-2 event at or after it. Alerts are emitted eagerly,
as soon as both halves are known. For a key with one start (a process starts once) the
result does not depend on arrival order: one alert iff a qualifying stage-2 event lies in
[start, start + span]. Ties in milliseconds count as start-then-network; events with equal
times are ordered by digest so that "latest" is deterministic.

Bounded state (see `limits.Limits`): a key keeps at most `pending_starts` starts (the
latest: a connection pairs with the latest start before it and consumes the older ones),
`held_events` stage-2 events (the earliest: a start pairs with the earliest one after it)
and `seen_markers` duplicate markers (those that expire last). Once a key's sequence has
completed, stage-2 events at or after its start are not held: only another start of the
same process could pair with them, and a process starts once (they are counted as
`collapsed`). A build machine's MSBuild making thousands of connections therefore costs
one small value, not one that grows with every connection.

State layout (all values JSON-compatible, all keys prefixed by the scope so that expiry,
run while handling an event of that scope, only touches keys of its own changelog
partition):
- `k|<scope>|<join key>`: {"s": pending starts, "n": held stage-2 events, "seen": {digest:
  time until which a duplicate of that record must be recognised}, "done": [start of the
  latest completed sequence, until when that is remembered], "ix": the expiry bucket the
  key is indexed in}
- `m|<scope>`: {"wm": watermark, "src": {input: its latest event time}, "x": [expiry
  bucket ids], "c": {cap bucket: alerts}}
- `x|<scope>|<bucket>|<shard>[|<page>]`: {"m": {join key: 1}, "b": bytes, "p": pages} for
  keys whose earliest retained time falls in that bucket, split into INDEX_SHARDS by a
  stable hash of the key and into pages of at most `index_page_bytes`. A key is indexed
  once, at its earliest time; expiring it re-indexes what is left.

The watermark of a scope is the minimum over its inputs (source topic/partition, or input
file) of each input's latest event time, as in Flink: a keyed partition merges several
inputs, and one input far ahead in event time (a topic replayed first, a file read before
another) must not expire the state another input still needs. An input that lags the most
advanced one by more than `source_skew_ms` (idle, or stuck) stops holding the watermark back
and is forgotten, so state stays bounded; `end_source()` drops an input that has ended (a
file read to its end). No input counts for more than the clock plus the lateness: an
endpoint whose clock runs ahead cannot expire everybody else's state.
"""

from __future__ import annotations

import bisect
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.engine.event import Event
from app.engine.limits import DEFAULT_LIMITS, Limits
from app.engine.state import StateStore

INDEX_SHARDS = 256
PAIR_LAYOUT = 0
"""Layout of the eager matcher's key state: no `"v"` field (the ordered one writes 1)."""

log = logging.getLogger("seqwatch.engine")

Entry = dict[str, Any]  # Event.to_entry()


@dataclass
class Stats:
    """Counters the worker exports as metrics and `seqwatch detect` prints."""

    received: int = 0
    decoded: int = 0
    dropped: int = 0
    no_key: int = 0
    key_too_long: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    late: int = 0
    duplicates: int = 0
    held_by_cap: int = 0
    expired: int = 0
    alerts: int = 0
    collapsed: int = 0
    trimmed: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def trim(self, kind: str, n: int = 1) -> None:
        self.trimmed[kind] = self.trimmed.get(kind, 0) + n

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "decoded": self.decoded,
            "dropped": self.dropped,
            "no_key": self.no_key,
            "key_too_long": self.key_too_long,
            "rejected": dict(self.rejected),
            "late": self.late,
            "duplicates": self.duplicates,
            "held_by_cap": self.held_by_cap,
            "expired": self.expired,
            "alerts": self.alerts,
            "collapsed": self.collapsed,
            "trimmed": dict(self.trimmed),
        }

    def copy(self) -> Stats:
        clone = Stats(**vars(self))
        clone.rejected = dict(self.rejected)
        clone.trimmed = dict(self.trimmed)
        return clone

    def restore(self, other: Stats) -> None:
        """Put back the counters of `other` (a copy taken before work that is redone)."""
        for name, value in vars(other.copy()).items():
            setattr(self, name, value)


def _order(entry: Entry) -> tuple[int, str]:
    return entry["t"], entry["d"]


def _new_meta() -> dict[str, Any]:
    return {"wm": None, "src": {}, "x": [], "c": {}}


class Matcher:
    """Applies one event to the state of its key and scope; returns completed pairs."""

    def __init__(
        self,
        *,
        span_ms: int,
        ttl_ms: int,
        lateness_ms: int,
        alert_cap: int,
        cap_window_ms: int,
        source_skew_ms: int,
        stats: Stats,
        make_alert: Callable[[list[Entry | None], str, str | None], dict[str, Any]],
        limits: Limits = DEFAULT_LIMITS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.span = span_ms
        self.ttl = ttl_ms
        self.lateness = lateness_ms
        self.cap = alert_cap
        self.cap_window = cap_window_ms
        self.source_skew = source_skew_ms
        self.stats = stats
        self.make_alert = make_alert
        self.limits = limits
        self.clock = clock
        # ~10 buckets cover the retention horizon (prompt deletion), and never more than
        # `expiry_buckets` the whole range an index can span: the retention, the longest
        # marker (span + skew) and a watermark moved back by an input read late (skew).
        horizon = ttl_ms + lateness_ms + span_ms + 2 * source_skew_ms
        self.bucket_ms = max(
            1, (ttl_ms + lateness_ms) // 10, -(-horizon // max(1, limits.expiry_buckets - 16))
        )
        # Keys are indexed no further ahead of the watermark than this many buckets (an
        # event stamped far ahead is visited early and indexed again).
        self.ahead = -(-(span_ms + source_skew_ms) // self.bucket_ms) + 2
        self._warned: set[tuple[str, str]] = set()

    def process(self, event: Event, state: StateStore, scope: str) -> list[dict[str, Any]]:
        meta_key = f"m|{scope}"
        meta = state.get(meta_key) or _new_meta()
        t = event.timestamp_ms
        wm = meta["wm"]
        if wm is not None and t < wm - self.lateness:
            self.stats.late += 1
        self._advance(meta, f"{event.source.topic}#{event.source.partition}", t)
        cutoff = meta["wm"] - self.ttl - self.lateness
        self._expire(state, scope, meta, cutoff)

        key_key = f"k|{scope}|{event.key}"
        ks = state.get(key_key) or {"s": [], "n": [], "seen": {}}
        if ks.get("v", PAIR_LAYOUT) != PAIR_LAYOUT:
            raise ValueError(
                f"state of {key_key} has layout {ks.get('v')!r}, the eager matcher reads"
                f" layout {PAIR_LAYOUT} (a rule that changed shape keeps its rule_id?):"
                " reset the state (docs/operations.md)"
            )
        alerts: list[dict[str, Any]] = []
        digest = event.digest
        if digest in ks["seen"] or any(e["d"] == digest for e in (*ks["s"], *ks["n"])):
            self.stats.duplicates += 1
            state.set(meta_key, meta)
            return alerts
        entry = event.to_entry()
        keep = t >= cutoff  # older entries would be expired at once: match, do not store
        paired: Entry | None = None  # the start this event completes a sequence with
        marked = True  # whether a duplicate of this record must be recognised
        done = ks.get("done")
        if 1 in event.stages:
            start = self._latest_start(ks["s"], t)
            if start is not None and t - start["t"] <= self.span:
                ks["s"] = [s for s in ks["s"] if _order(s) > _order(start)]
                self._emit([start, entry], meta, scope, alerts, event.key)
                paired = start
            elif keep and done is not None and t >= done[0] and 0 not in event.stages:
                self.stats.collapsed += 1  # only another start of this process could use it
                marked = False
            elif keep:
                marked = self._hold(ks, entry)
        if 0 in event.stages:
            net = self._earliest_net(ks["n"], t, digest)
            if net is not None:
                ks["n"] = [n for n in ks["n"] if n is not net]
                ks["s"] = [s for s in ks["s"] if _order(s) > _order(entry)]
                self._emit([entry, net], meta, scope, alerts, event.key)
                paired = entry
            elif keep:
                self._pend(ks, entry)
                marked = True
        # A start's duplicate could pair with any stage-2 event up to `span` after it, so its
        # marker lives as long as those can; a stage-2 event's, as long as older starts.
        marker = t + self.span if 0 in event.stages else t
        if marked and marker >= cutoff:
            ks["seen"][digest] = marker
        if paired is not None:
            self._complete(ks, paired)
        self._bound_seen(ks)
        self._store(state, scope, meta, event.key, key_key, ks)
        state.set(meta_key, meta)
        return alerts

    def process_event(self, event: Event, state: StateStore, scope: str) -> list[dict[str, Any]]:
        """An event rule: every matching event is an alert (under the cap), no key state.

        Only the scope's meta value is kept, for the watermark and the alert cap; an exact
        duplicate alerts again with the same `alert.id` (Elasticsearch indexes it twice).
        """
        meta_key = f"m|{scope}"
        meta = state.get(meta_key) or _new_meta()
        if meta["wm"] is not None and event.timestamp_ms < meta["wm"] - self.lateness:
            self.stats.late += 1
        self._advance(meta, f"{event.source.topic}#{event.source.partition}", event.timestamp_ms)
        self._forget_cap_buckets(meta, meta["wm"] - self.ttl - self.lateness)
        alerts: list[dict[str, Any]] = []
        self._emit([event.to_entry()], meta, scope, alerts)
        state.set(meta_key, meta)
        return alerts

    # per-key state -------------------------------------------------------------------------
    def _hold(self, ks: dict[str, Any], entry: Entry) -> bool:
        """Hold a stage-2 event for a start still to come; False if it is not kept."""
        nets: list[Entry] = ks["n"]
        bisect.insort(nets, entry, key=_order)
        if len(nets) <= self.limits.held_events:
            return True
        dropped = nets.pop()  # the latest: a start pairs with the earliest after it
        self.stats.trim("held_event")
        return dropped is not entry

    def _pend(self, ks: dict[str, Any], entry: Entry) -> None:
        starts: list[Entry] = ks["s"]
        bisect.insort(starts, entry, key=_order)
        if len(starts) > self.limits.pending_starts:
            starts.pop(0)  # the oldest: a connection pairs with the latest before it
            self.stats.trim("pending_start")

    def _complete(self, ks: dict[str, Any], start: Entry) -> None:
        """A sequence of this key has completed: remember it, drop what it makes useless.

        The watermark moves back when an input shows up late (by up to `source_skew`), and
        so does the cutoff: a network event that old may be stored again after this start's
        ordinary marker is gone, and a duplicate of the start would then pair with it. A
        start that has paired is remembered for that much longer (few do: one per alert).
        """
        until = start["t"] + self.span + self.source_skew
        if ks["seen"].get(start["d"], until - 1) < until:
            ks["seen"][start["d"]] = until
        done = ks.get("done")
        if done is None or done[0] < start["t"]:
            ks["done"] = [start["t"], until]
        elif done[1] < until:
            done[1] = until
        later = [n for n in ks["n"] if n["t"] >= start["t"]]
        if later:
            ks["n"] = [n for n in ks["n"] if n["t"] < start["t"]]
            self.stats.collapsed += len(later)

    def _bound_seen(self, ks: dict[str, Any]) -> None:
        seen: dict[str, int] = ks["seen"]
        excess = len(seen) - self.limits.seen_markers
        if excess > 0:  # forget the markers that expire first
            for digest, _ in sorted(seen.items(), key=lambda item: (item[1], item[0]))[:excess]:
                del seen[digest]
            self.stats.trim("seen_marker", excess)

    @staticmethod
    def _earliest_time(ks: dict[str, Any]) -> int | None:
        times = [e["t"] for e in ks["s"]] + [e["t"] for e in ks["n"]] + list(ks["seen"].values())
        if ks.get("done") is not None:
            times.append(ks["done"][1])
        return min(times) if times else None

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
        """Write the key's state (or delete it) and index it at its earliest time.

        `visited` is the expiry bucket being swept when called from expiry: the key's
        index entry there is being consumed, so it needs a new one.
        """
        earliest = self._earliest_time(ks)
        if earliest is None:
            state.delete(key_key)
            return
        bucket = self._index_bucket(meta, earliest)
        indexed = ks.get("ix")
        if indexed is None or bucket < indexed or (visited is not None and indexed <= visited):
            self._index(state, scope, meta, key, bucket)
            ks["ix"] = bucket
        state.set(key_key, ks)

    # matching ----------------------------------------------------------------------------
    @staticmethod
    def _latest_start(starts: list[Entry], t: int) -> Entry | None:
        best: Entry | None = None
        for start in starts:
            if start["t"] <= t and (best is None or _order(start) > _order(best)):
                best = start
        return best

    def _earliest_net(self, nets: list[Entry], t: int, digest: str) -> Entry | None:
        best: Entry | None = None
        for net in nets:
            if (
                t <= net["t"] <= t + self.span
                and net["d"] != digest
                and (best is None or _order(net) < _order(best))
            ):
                best = net
        return best

    def _emit(
        self,
        entries: list[Entry | None],
        meta: dict[str, Any],
        scope: str,
        alerts: list[dict[str, Any]],
        key: str | None = None,
    ) -> None:
        alert = self.make_alert(entries, scope, key)
        if self.cap > 0 and self.cap_window > 0:
            bucket = str(max(e["t"] for e in entries if e is not None) // self.cap_window)
            counts: dict[str, int] = meta["c"]
            count = counts.get(bucket, 0)
            if count >= self.cap:
                self.stats.held_by_cap += 1
                if (scope, bucket) not in self._warned:  # once per bucket: no log flood
                    if len(self._warned) >= 4_096:
                        self._warned.clear()
                    self._warned.add((scope, bucket))
                    log.warning(
                        "alert cap reached: %d alerts per %d ms of event time in scope %s;"
                        " holding back alert %s and further ones of this bucket (counted"
                        " as held_by_cap)",
                        self.cap,
                        self.cap_window,
                        scope,
                        alert["alert"]["id"],
                    )
                return
            counts[bucket] = count + 1
            if len(counts) > self.limits.cap_buckets:  # events far apart in time
                del counts[min(counts, key=int)]
                self.stats.trim("cap_bucket")
        self.stats.alerts += 1
        alerts.append(alert)

    # watermark ---------------------------------------------------------------------------
    def _advance(self, meta: dict[str, Any], source: str, t: int) -> None:
        """Move the input's time to `t` (clamped to the clock) and recompute the watermark."""
        sources: dict[str, int] = meta["src"]
        t = min(t, int(self.clock() * 1000) + self.lateness)
        if t > sources.get(source, t - 1):
            sources[source] = t
        top = max(sources.values())
        floor = top - self.source_skew
        if len(sources) > self.limits.sources or min(sources.values()) < floor:
            lagging = [s for s, v in sources.items() if v < floor]
            for name in lagging:  # ignored by the watermark anyway: forget them
                del sources[name]
            while len(sources) > self.limits.sources:
                del sources[min(sources, key=lambda s: (sources[s], s))]
                self.stats.trim("source")
        meta["wm"] = min(sources.values())

    def end_source(self, state: StateStore, scope: str, topic: str, partition: int) -> None:
        """Forget an input that has ended, so it no longer holds the watermark back."""
        meta_key = f"m|{scope}"
        meta = state.get(meta_key)
        if meta is None or meta["src"].pop(f"{topic}#{partition}", None) is None:
            return
        if meta["src"]:
            meta["wm"] = min(meta["src"].values())
        state.set(meta_key, meta)

    # retention ---------------------------------------------------------------------------
    def _index_bucket(self, meta: dict[str, Any], t: int) -> int:
        bucket = t // self.bucket_ms
        wm = meta["wm"]
        return bucket if wm is None else min(bucket, wm // self.bucket_ms + self.ahead)

    def _index(
        self,
        state: StateStore,
        scope: str,
        meta: dict[str, Any],
        key: str,
        bucket: int,
        kind: str = "x",
    ) -> None:
        """Add `key` to index `kind` ("x": expiry, "r": release) at `bucket`."""
        base = f"{kind}|{scope}|{bucket}|{zlib.crc32(key.encode()) % INDEX_SHARDS}"
        size = len(orjson.dumps(key)) + 3  # "key":1,
        first = state.get(base)
        buckets: list[int] = meta.setdefault(kind, [])
        position = bisect.bisect_left(buckets, bucket)
        if position == len(buckets) or buckets[position] != bucket:
            buckets.insert(position, bucket)
        if first is None:
            state.set(base, {"m": {key: 1}, "b": size, "p": 1})
            return
        first = _page(first)
        if key in first["m"]:
            return
        pages = first["p"]
        last_key = base if pages == 1 else f"{base}|{pages - 1}"
        last = first if pages == 1 else _page(state.get(last_key) or {"m": {}, "b": 0})
        if key in last["m"]:
            return
        if last["b"] + size <= self.limits.index_page_bytes:
            last["m"][key] = 1
            last["b"] += size
            state.set(last_key, last)
            return
        state.set(f"{base}|{pages}", {"m": {key: 1}, "b": size})
        first["p"] = pages + 1
        state.set(base, first)

    @staticmethod
    def _sweep(state: StateStore, scope: str, bucket: int, kind: str = "x") -> list[str]:
        """The keys indexed in `bucket` of index `kind`; deletes the bucket's pages."""
        keys: list[str] = []
        for shard in range(INDEX_SHARDS):
            base = f"{kind}|{scope}|{bucket}|{shard}"
            first = state.get(base)
            if first is None:
                continue
            first = _page(first)
            for page in range(first["p"]):
                page_key = base if page == 0 else f"{base}|{page}"
                members = first if page == 0 else _page(state.get(page_key) or {"m": {}})
                keys.extend(members["m"])
                state.delete(page_key)
        return keys

    def _expire_key(
        self,
        state: StateStore,
        scope: str,
        meta: dict[str, Any],
        key: str,
        cutoff: int,
        bucket: int,
    ) -> None:
        key_key = f"k|{scope}|{key}"
        ks = state.get(key_key)
        if ks is None:
            return
        self.stats.expired += self._drop_expired(ks, cutoff)
        ks["seen"] = {d: t for d, t in ks["seen"].items() if t >= cutoff}
        self._store(state, scope, meta, key, key_key, ks, visited=bucket)

    def _drop_expired(self, ks: dict[str, Any], cutoff: int) -> int:
        """Drop the key's entries older than `cutoff`; how many events went."""
        starts = [s for s in ks["s"] if s["t"] >= cutoff]
        nets = [n for n in ks["n"] if n["t"] >= cutoff]
        dropped = len(ks["s"]) - len(starts) + len(ks["n"]) - len(nets)
        ks["s"], ks["n"] = starts, nets
        if ks.get("done") is not None and ks["done"][1] < cutoff:
            del ks["done"]
        return dropped

    def _expire(self, state: StateStore, scope: str, meta: dict[str, Any], cutoff: int) -> None:
        """Delete entries older than `cutoff` (watermark - TTL - lateness), bucket by bucket."""
        buckets: list[int] = meta["x"]
        while buckets and (buckets[0] + 1) * self.bucket_ms <= cutoff:
            bucket = buckets.pop(0)
            for key in self._sweep(state, scope, bucket):
                self._expire_key(state, scope, meta, key, cutoff, bucket)
        self._forget_cap_buckets(meta, cutoff)

    def _forget_cap_buckets(self, meta: dict[str, Any], cutoff: int) -> None:
        """Alert-cap counts of buckets no event still kept can fall into."""
        if self.cap_window > 0 and meta["c"]:
            horizon = cutoff // self.cap_window - 1
            for cap_bucket in [b for b in meta["c"] if int(b) < horizon]:
                del meta["c"][cap_bucket]


def _page(value: dict[str, Any]) -> dict[str, Any]:
    """An index page; a shard written before pages existed was {join key: 1}."""
    if "m" in value and isinstance(value["m"], dict):
        value.setdefault("p", 1)
        value.setdefault("b", 0)
        return value
    return {"m": value, "b": sum(len(orjson.dumps(k)) + 3 for k in value), "p": 1}
