"""Prometheus metrics of one worker, read from counters the hot path already keeps.

The engine and the ingest loop count in plain dicts (a dict increment is far cheaper
than a prometheus Counter call per event); a custom collector turns them into metric
families when Prometheus scrapes.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WorkerStats:
    """Counters of the edges (Kafka side); the engine keeps its own `stats`."""

    def __init__(self) -> None:
        self.events_in: Counter[str] = Counter()
        self.rejects: Counter[str] = Counter()
        self.deadlettered = 0
        self.alerts_sent = 0
        self.forwarded = 0
        self.sequenced = 0
        self.outages = 0
        self.dropped = 0
        self.watermark_ms: dict[str, int] = {}
        self.started = time.time()
        self.state_rejects: Counter[str] = Counter()  # dead-lettered by the state stage
        self.delivery_failures: Counter[str] = Counter()  # refused sends, by topic (ingest)
        self.ingest_engine: dict[str, Any] | None = None  # the ingest process's engine stats
        self.ingest_stall: dict[str, Any] | None = None
        self.ingest_alerts = 0  # an event rule's alerts, sent by the ingest process
        self.ingest_rules: dict[str, dict[str, int]] | None = None  # per rule, from there

    def checkpoint_ingest(self) -> tuple[Counter[str], Counter[str], int, int, int]:
        """The counters an ingest batch moves, before it: an aborted batch is read again
        and must not count twice (its forwards never became visible)."""
        counters = Counter(self.events_in), Counter(self.rejects)
        return (*counters, self.deadlettered, self.dropped, self.forwarded)

    def restore_ingest(self, checkpoint: tuple[Counter[str], Counter[str], int, int, int]) -> None:
        events_in, rejects, self.deadlettered, self.dropped, self.forwarded = checkpoint
        self.events_in, self.rejects = Counter(events_in), Counter(rejects)


DECODE_TRIMS = ("fields", "original", "key_fanout")
"""Trims made when an event is decoded (by the ingest stage); the others by the state stage."""


class WorkerCollector(Collector):
    def __init__(self, stats: WorkerStats, engine: Any, state_size: Any, failing: Any) -> None:
        self._stats = stats
        self._engine = engine
        self._state_size = state_size
        self._failing = failing

    def collect(self) -> Iterator[Any]:
        s = self._stats
        events = CounterMetricFamily(
            "seqwatch_events_in", "Records read from the input topics", labels=["topic"]
        )
        for topic, n in s.events_in.items():
            events.add_metric([topic], n)
        yield events
        rejects = CounterMetricFamily(
            "seqwatch_rejects", "Records rejected as malformed, by reason", labels=["reason"]
        )
        for reason, n in (s.rejects + s.state_rejects).items():
            rejects.add_metric([reason], n)
        yield rejects
        yield CounterMetricFamily(
            "seqwatch_deadlettered",
            "Records sent to the dead-letter topic",
            value=s.deadlettered + sum(s.state_rejects.values()),
        )
        yield CounterMetricFamily(
            "seqwatch_dropped", "Records that cannot match the rule, dropped", value=s.dropped
        )
        yield CounterMetricFamily(
            "seqwatch_forwarded", "Candidate events keyed to the state stage", value=s.forwarded
        )
        yield CounterMetricFamily(
            "seqwatch_sequenced",
            "Candidate events run through the sequence state",
            value=s.sequenced,
        )
        yield CounterMetricFamily(
            "seqwatch_alerts", "Alerts produced", value=s.alerts_sent + s.ingest_alerts
        )
        engine_stats = _engine_stats(self._engine)
        held = engine_stats.get("held_by_cap", 0)
        if s.ingest_engine is not None:  # an event rule's cap is applied by the ingest
            held += s.ingest_engine.get("held_by_cap", 0)
        yield CounterMetricFamily(
            "seqwatch_alerts_held_by_cap",
            "Alerts held back by the per-bucket alert cap",
            value=held,
        )
        yield CounterMetricFamily(
            "seqwatch_late_events",
            "Events later than the allowed lateness (still processed)",
            value=engine_stats.get("late", 0),
        )
        yield CounterMetricFamily(
            "seqwatch_duplicates",
            "Exact duplicate events ignored",
            value=engine_stats.get("duplicates", 0),
        )
        yield CounterMetricFamily(
            "seqwatch_expired",
            "State entries expired by the TTL",
            value=engine_stats.get("expired", 0),
        )
        decode = s.ingest_engine if s.ingest_engine is not None else engine_stats
        skipped = CounterMetricFamily(
            "seqwatch_skipped",
            "Events matching a stage that cannot join, by reason (as in Elasticsearch)",
            labels=["reason"],
        )
        skipped.add_metric(["no_key"], decode.get("no_key", 0))
        skipped.add_metric(["key_too_long"], decode.get("key_too_long", 0))
        yield skipped
        yield CounterMetricFamily(
            "seqwatch_collapsed",
            "Stage-2 events after their key's completed sequence, not held",
            value=engine_stats.get("collapsed", 0),
        )
        trimmed = CounterMetricFamily(
            "seqwatch_trimmed",
            "Entries dropped or cut to keep every value within its bound, by kind",
            labels=["kind"],
        )
        kinds = {
            **{k: v for k, v in engine_stats.get("trimmed", {}).items() if k not in DECODE_TRIMS},
            **{k: v for k, v in decode.get("trimmed", {}).items() if k in DECODE_TRIMS},
        }
        for kind, n in sorted(kinds.items()):
            trimmed.add_metric([kind], n)
        yield trimmed
        refused = CounterMetricFamily(
            "seqwatch_delivery_failures",
            "Sends the broker refused in the ingest stage (the batch is redone), by topic",
            labels=["topic"],
        )
        for topic, n in s.delivery_failures.items():
            refused.add_metric([topic], n)
        yield refused
        stalled = GaugeMetricFamily(
            "seqwatch_stalled", "1 while a stage retries a failing batch", labels=["stage"]
        )
        stalled.add_metric(["ingest"], 1 if s.ingest_stall else 0)
        yield stalled
        failure = self._failing()
        yield GaugeMetricFamily(
            "seqwatch_failing",
            "1 while the worker restarts after a failure it has not yet got past",
            value=1 if failure else 0,
        )
        yield CounterMetricFamily(
            "seqwatch_failures",
            "Times the worker stopped itself after a failure, since it last got past one",
            value=failure["count"] if failure else 0,
        )
        yield CounterMetricFamily(
            "seqwatch_kafka_outages", "Times every broker became unreachable", value=s.outages
        )
        yield CounterMetricFamily(
            "seqwatch_worker_restarts",
            "Restarts of the worker process by its supervisor",
            value=int(os.environ.get("SEQWATCH_RESTARTS", "0")),
        )
        yield GaugeMetricFamily(
            "seqwatch_state_entries", "Keys in the local state table", value=self._state_size()
        )
        yield from _per_rule(self._engine, s.ingest_rules)
        lag = GaugeMetricFamily(
            "seqwatch_watermark_lag_seconds",
            "Wall clock minus the event-time watermark, per state partition",
            labels=["partition"],
        )
        now_ms = time.time() * 1000
        for partition, wm in s.watermark_ms.items():
            lag.add_metric([partition], max(0.0, (now_ms - wm) / 1000))
        yield lag


def _engine_stats(engine: Any) -> dict[str, Any]:
    totals = getattr(engine, "totals", None)
    if totals is not None:
        return dict(totals().as_dict())
    stats = getattr(engine, "stats", {})
    if isinstance(stats, dict):
        return stats
    return dict(stats.as_dict())


def _per_rule(engine: Any, ingest: dict[str, dict[str, int]] | None = None) -> Iterator[Any]:
    """Counters by rule (`rule` label: its name; `rule_id` too): the state stage's, plus
    the ingest process's (where event rules alert and every rule's events are decoded)."""
    rule_stats = getattr(engine, "rule_stats", None)
    if rule_stats is None:
        return
    families = {
        "alerts": CounterMetricFamily(
            "seqwatch_rule_alerts", "Alerts of each rule", labels=["rule", "rule_id"]
        ),
        "held_by_cap": CounterMetricFamily(
            "seqwatch_rule_alerts_held_by_cap",
            "Alerts of each rule held back by its alert cap",
            labels=["rule", "rule_id"],
        ),
        "decoded": CounterMetricFamily(
            "seqwatch_rule_events",
            "Events matching a stage of each rule",
            labels=["rule", "rule_id"],
        ),
        "late": CounterMetricFamily(
            "seqwatch_rule_late_events", "Late events of each rule", labels=["rule", "rule_id"]
        ),
    }
    for rule, stats in rule_stats():
        values = stats.as_dict()
        other = (ingest or {}).get(rule.rule_id, {})
        for name, family in families.items():
            family.add_metric([rule.name, rule.rule_id], values.get(name, 0) + other.get(name, 0))
    yield from families.values()


def build_registry(
    stats: WorkerStats, engine: Any, state_size: Any, failing: Any = lambda: None
) -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    registry.register(WorkerCollector(stats, engine, state_size, failing))
    latency = Histogram(
        "seqwatch_detection_latency_seconds",
        "Alert produced minus the network event's arrival in Kafka",
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    return registry, latency
