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

State layout (all values JSON-compatible, all keys prefixed by the scope so that expiry,
run while handling an event of that scope, only touches keys of its own changelog
partition):
- `k|<scope>|<join key>`: {"s": pending starts, "n": held stage-2 events, "seen": {digest:
  time until which a duplicate of that record must be recognised}}
- `m|<scope>`: {"wm": watermark, "src": {input: its latest event time}, "x": [expiry
  bucket ids], "c": {cap bucket: alerts}}

The watermark of a scope is the minimum over its inputs (source topic/partition, or input
file) of each input's latest event time, as in Flink: a keyed partition merges several
inputs, and one input far ahead in event time (a topic replayed first, a file read before
another) must not expire the state another input still needs. An input that lags the most
advanced one by more than `source_skew_ms` (idle, or stuck) stops holding the watermark back,
so state stays bounded; `end_source()` drops an input that has ended (a file read to its end).
- `x|<scope>|<bucket>|<shard>`: {join key: 1} for keys holding entries with times in that
  bucket, split into INDEX_SHARDS by a stable hash of the key: adding a key rewrites one
  small shard, not a list of every key of the bucket (a flood of starts made that
  quadratic: each start rewrote an index of thousands of keys to state and changelog).
"""

from __future__ import annotations

import bisect
import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.engine.event import Event
from app.engine.state import StateStore

INDEX_SHARDS = 256

log = logging.getLogger("seqwatch.engine")

Entry = dict[str, Any]  # Event.to_state()


@dataclass
class Stats:
    """Counters the worker exports as metrics and `seqwatch detect` prints."""

    received: int = 0
    decoded: int = 0
    dropped: int = 0
    no_key: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    late: int = 0
    duplicates: int = 0
    held_by_cap: int = 0
    expired: int = 0
    alerts: int = 0

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "decoded": self.decoded,
            "dropped": self.dropped,
            "no_key": self.no_key,
            "rejected": dict(self.rejected),
            "late": self.late,
            "duplicates": self.duplicates,
            "held_by_cap": self.held_by_cap,
            "expired": self.expired,
            "alerts": self.alerts,
        }


def _order(entry: Entry) -> tuple[int, str]:
    return entry["t"], entry["d"]


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
        make_alert: Callable[[Entry, Entry, str], dict[str, Any]],
    ) -> None:
        self.span = span_ms
        self.ttl = ttl_ms
        self.lateness = lateness_ms
        self.cap = alert_cap
        self.cap_window = cap_window_ms
        self.source_skew = source_skew_ms
        self.stats = stats
        self.make_alert = make_alert
        # ~10 buckets cover the retention horizon: few index keys, prompt deletion.
        self.bucket_ms = max(1, (ttl_ms + lateness_ms) // 10)
        self._warned: set[tuple[str, str]] = set()

    def process(self, event: Event, state: StateStore, scope: str) -> list[dict[str, Any]]:
        meta_key = f"m|{scope}"
        meta = state.get(meta_key) or {"wm": None, "src": {}, "x": [], "c": {}}
        t = event.timestamp_ms
        wm = meta["wm"]
        if wm is not None and t < wm - self.lateness:
            self.stats.late += 1
        sources: dict[str, int] = meta["src"]
        source = f"{event.source.topic}#{event.source.partition}"
        if t > sources.get(source, t - 1):
            sources[source] = t
        wm = meta["wm"] = self._watermark(sources)
        cutoff = wm - self.ttl - self.lateness
        self._expire(state, scope, meta, cutoff)

        key_key = f"k|{scope}|{event.key}"
        ks = state.get(key_key) or {"s": [], "n": [], "seen": {}}
        alerts: list[dict[str, Any]] = []
        if event.digest in ks["seen"]:
            self.stats.duplicates += 1
            state.set(meta_key, meta)
            return alerts
        entry = event.to_state()
        keep = t >= cutoff  # older entries would be expired at once: match, do not store
        paired: Entry | None = None  # the start this event completes a sequence with
        if 1 in event.stages:
            start = self._latest_start(ks["s"], t)
            if start is not None and t - start["t"] <= self.span:
                ks["s"] = [s for s in ks["s"] if _order(s) > _order(start)]
                self._emit(start, entry, meta, scope, alerts)
                paired = start
            elif keep:
                ks["n"].append(entry)
        if 0 in event.stages:
            net = self._earliest_net(ks["n"], t, event.digest)
            if net is not None:
                ks["n"] = [n for n in ks["n"] if n is not net]
                ks["s"] = [s for s in ks["s"] if _order(s) > _order(entry)]
                self._emit(entry, net, meta, scope, alerts)
                paired = entry
            elif keep:
                ks["s"].append(entry)
        # A start's duplicate could pair with any stage-2 event up to `span` after it, so its
        # marker lives as long as those can; a stage-2 event's, as long as older starts.
        marker = t + self.span if 0 in event.stages else t
        if marker >= cutoff:
            ks["seen"][event.digest] = marker
            self._index(state, scope, meta, event.key, marker)
        if keep and marker != t:
            self._index(state, scope, meta, event.key, t)
        if paired is not None:
            # The watermark moves back when an input shows up late (by up to
            # `source_skew`), and so does the cutoff: a network event that old may be
            # stored again after this start's ordinary marker is gone, and a duplicate of
            # the start would then pair with it. A start that has paired is remembered
            # for that much longer (few do: one per alert).
            until = paired["t"] + self.span + self.source_skew
            if ks["seen"].get(paired["d"], until - 1) < until:
                ks["seen"][paired["d"]] = until
                self._index(state, scope, meta, event.key, until)
        if ks["s"] or ks["n"] or ks["seen"]:
            state.set(key_key, ks)
        else:
            state.delete(key_key)
        state.set(meta_key, meta)
        return alerts

    def _watermark(self, sources: dict[str, int]) -> int:
        top = max(sources.values())
        floor = top - self.source_skew
        return min((t for t in sources.values() if t >= floor), default=top)

    def end_source(self, state: StateStore, scope: str, topic: str, partition: int) -> None:
        """Forget an input that has ended, so it no longer holds the watermark back."""
        meta_key = f"m|{scope}"
        meta = state.get(meta_key)
        if meta is None or meta["src"].pop(f"{topic}#{partition}", None) is None:
            return
        meta["wm"] = self._watermark(meta["src"]) if meta["src"] else meta["wm"]
        state.set(meta_key, meta)

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
        start: Entry,
        net: Entry,
        meta: dict[str, Any],
        scope: str,
        alerts: list[dict[str, Any]],
    ) -> None:
        alert = self.make_alert(start, net, scope)
        if self.cap > 0 and self.cap_window > 0:
            bucket = str(max(start["t"], net["t"]) // self.cap_window)
            count = meta["c"].get(bucket, 0)
            if count >= self.cap:
                self.stats.held_by_cap += 1
                if (scope, bucket) not in self._warned:  # once per bucket: no log flood
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
            meta["c"][bucket] = count + 1
        self.stats.alerts += 1
        alerts.append(alert)

    # retention ---------------------------------------------------------------------------
    def _index(self, state: StateStore, scope: str, meta: dict[str, Any], key: str, t: int) -> None:
        bucket = t // self.bucket_ms
        index_key = f"x|{scope}|{bucket}|{zlib.crc32(key.encode()) % INDEX_SHARDS}"
        members = state.get(index_key) or {}
        if key not in members:
            members[key] = 1
            state.set(index_key, members)
        buckets: list[int] = meta["x"]
        position = bisect.bisect_left(buckets, bucket)
        if position == len(buckets) or buckets[position] != bucket:
            buckets.insert(position, bucket)

    def _expire_key(self, state: StateStore, key_key: str, cutoff: int) -> None:
        ks = state.get(key_key)
        if ks is None:
            return
        starts = [s for s in ks["s"] if s["t"] >= cutoff]
        nets = [n for n in ks["n"] if n["t"] >= cutoff]
        seen = {d: t for d, t in ks["seen"].items() if t >= cutoff}
        self.stats.expired += len(ks["s"]) - len(starts) + len(ks["n"]) - len(nets)
        if starts or nets or seen:
            state.set(key_key, {"s": starts, "n": nets, "seen": seen})
        else:
            state.delete(key_key)

    def _expire(self, state: StateStore, scope: str, meta: dict[str, Any], cutoff: int) -> None:
        """Delete entries older than `cutoff` (watermark - TTL - lateness), bucket by bucket."""
        buckets: list[int] = meta["x"]
        while buckets and (buckets[0] + 1) * self.bucket_ms <= cutoff:
            bucket = buckets.pop(0)
            for shard in range(INDEX_SHARDS):
                index_key = f"x|{scope}|{bucket}|{shard}"
                members = state.get(index_key)
                if members is None:
                    continue
                for key in members:
                    self._expire_key(state, f"k|{scope}|{key}", cutoff)
                state.delete(index_key)
        if self.cap_window > 0 and meta["c"]:
            horizon = cutoff // self.cap_window - 1
            for bucket in [b for b in meta["c"] if int(b) < horizon]:
                del meta["c"][bucket]
