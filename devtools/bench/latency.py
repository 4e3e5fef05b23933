"""Detection latency at a steady load: how long after the completing network event is
produced does its alert become visible to a read_committed consumer.

A producer paces a synth background stream (no MSBuild at all) plus MSBuild start +
connection pairs, each pair's connection 10-100 ms after its start, all at a fixed total
rate, into fresh topics read by a worker that was started and ready beforehand. The
pairs are rendered at the moment they are produced, with the wall clock as event time,
so they look like live telemetry; the wall time just before the connection's produce()
is remembered per process.entity_id, and latency = reader's receive time minus that.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Producer

from app.errors import SeqwatchError
from app.kafka.io import producer_config
from app.kafka.settings import KafkaSettings
from devtools.bench.alerts import AlertReader, AlertTally
from devtools.synth import (
    DEFAULT_SHAPES,
    MSBUILD_FRAMEWORK,
    Host,
    Proc,
    Record,
    make_host,
    make_proc,
    populate_host,
    render_network,
    render_process_start,
)

BACKGROUND, START, NETWORK = 0, 1, 2
PAIR_NET_DELAY_S = (0.010, 0.100)
_DESTINATIONS = ("142.250.185.78", "13.107.42.14", "20.190.159.4", "140.82.121.4")


def plan(
    seconds: float, rate: float, pair_rate: float, rng: random.Random
) -> list[tuple[float, int, int]]:
    """The send schedule: (due seconds from the start, kind, index), sorted by due time.

    The total is `rate` events/s: background events evenly spaced at rate - 2*pair_rate,
    pair starts evenly spaced at pair_rate (the first half a period in), each pair's
    network event 10-100 ms after its start. Index counts per kind (background record
    number, pair number)."""
    n_pairs = int(seconds * pair_rate)
    bg_rate = max(0.0, rate - 2 * pair_rate)
    n_bg = int(seconds * bg_rate)
    out: list[tuple[float, int, int]] = [(i / bg_rate, BACKGROUND, i) for i in range(n_bg)]
    lo, hi = PAIR_NET_DELAY_S
    for k in range(n_pairs):
        start = (k + 0.5) / pair_rate
        out.append((start, START, k))
        out.append((start + lo + rng.random() * (hi - lo), NETWORK, k))
    out.sort()
    return out


class PairFactory:
    """MSBuild start + external connection pairs from hosts of every shipper shape.

    Hosts are named BENCH-* and seeded apart from the background's WS-*/SRV-* hosts, so an
    entity id of a pair can never collide with a background process."""

    def __init__(self, seed: int, per_shape: int = 2) -> None:
        self.rng = random.Random(seed)
        boot_us = int(time.time() * 1_000_000) - 3600 * 1_000_000
        self.hosts: list[Host] = []
        for i, shape in enumerate(s for s in DEFAULT_SHAPES for _ in range(per_shape)):
            h = make_host(shape, f"BENCH-{i:03d}", index=9000 + i, seed=seed)
            h.lean = True
            populate_host(h, self.rng, boot_us)
            self.hosts.append(h)
        self.procs: dict[int, Proc] = {}

    def start(self, k: int, us: int) -> tuple[str, bytes, str]:
        """Render pair k's MSBuild start at event time `us`: (topic, value, entity id)."""
        h = self.hosts[k % len(self.hosts)]
        parent = h.by_name.get("powershell.exe") or h.procs[0]
        p = make_proc(
            h,
            MSBUILD_FRAMEWORK,
            f"{MSBUILD_FRAMEWORK.path} C:\\Users\\Public\\bench{k}.xml",
            us,
            parent=parent,
        )
        self.procs[k] = p
        topic, doc = render_process_start(p, us, ship_us=us)
        return topic, orjson.dumps(doc), p.entity_id

    def network(self, k: int, us: int) -> tuple[str, bytes, str]:
        """Render pair k's outbound connection (after its start): (topic, value, entity id)."""
        p = self.procs.pop(k)
        dst = _DESTINATIONS[k % len(_DESTINATIONS)]
        topic, doc = render_network(
            p, us, dst, 443, sport=49152 + self.rng.randrange(16000), ship_us=us
        )
        return topic, orjson.dumps(doc), p.entity_id


@dataclass
class LatencyRun:
    pairs_sent: int = 0
    events_sent: int = 0
    send_seconds: float = 0.0
    produced_wall: dict[str, float] = field(default_factory=dict)
    tally: AlertTally | None = None
    latencies_ms: list[float] = field(default_factory=list)
    detect_ms: list[float] = field(default_factory=list)
    """event.created (the worker's engine completing the sequence) minus produce time."""
    unexpected_alerts: int = 0
    late_sends: int = 0
    """Sends more than 50 ms behind schedule: the bench process did not get the CPU (on a
    2-core machine it shares it with the worker and the broker)."""
    slowest: list[tuple[float, float]] = field(default_factory=list)
    """The five slowest pairs: (seconds into the phase when produced, latency ms)."""
    samples: list[tuple[float, float, float | None]] = field(default_factory=list)
    """Every pair: (seconds into the phase when produced, latency ms, ms until the state
    stage sent the alert): the difference of the two is the wait for its commit."""
    max_lag_ms: float = 0.0


def warm_producer(settings: KafkaSettings, topics: Sequence[str], warm_topic: str) -> Producer:
    """The phase's producer, connected, with its producer id and the topics' leaders.

    A fresh idempotent producer's first records wait for all three (the first records of
    a run reached the broker 300-400 ms after produce(), seen in the worker's fetch log):
    the bench's own start-up, which was counted as the worker's latency. One record to a
    topic of its own, flushed, and each topic's metadata, before the worker starts.
    """
    producer = Producer(producer_config(settings))
    for topic in topics:
        producer.list_topics(topic, timeout=30)
    producer.produce(warm_topic, b"{}")
    if producer.flush(30):
        raise SeqwatchError(f"the latency phase's producer could not write to {warm_topic}")
    return producer


def produce_paced(
    producer: Producer,
    schedule: Sequence[tuple[float, int, int]],
    background: Sequence[Record],
    topic_map: dict[str, str],
    pairs: PairFactory,
    run: LatencyRun,
) -> None:
    """Send `schedule` in real time; polls the producer between sends so delivery reports
    (and their memory) never pile up."""
    produce = producer.produce
    start = time.perf_counter()
    i = 0
    n = len(schedule)
    while i < n:
        now = time.perf_counter() - start
        while i < n and schedule[i][0] <= now:
            due, kind, index = schedule[i]
            lag = now - due
            if lag > 0.05:
                run.late_sends += 1
                run.max_lag_ms = max(run.max_lag_ms, lag * 1000)
            if kind == BACKGROUND:
                rec = background[index]
                topic, value = topic_map[rec.topic], rec.value
            else:
                wall = time.time()
                make = pairs.start if kind == START else pairs.network
                src_topic, value, entity = make(index, int(wall * 1_000_000))
                topic = topic_map[src_topic]
                if kind == NETWORK:
                    run.produced_wall[entity] = time.time()
                else:
                    run.pairs_sent += 1
            while True:
                try:
                    produce(topic, value)
                    break
                except BufferError:
                    producer.poll(0.01)
            run.events_sent += 1
            i += 1
        producer.poll(0)
        if i < n:
            wait = schedule[i][0] - (time.perf_counter() - start)
            if wait > 0:
                time.sleep(min(wait, 0.002))
    run.send_seconds = time.perf_counter() - start
    producer.flush(30)


def collect(run: LatencyRun, tally: AlertTally) -> None:
    """Per pair: first alert's read time (and its event.created) minus the produce time."""
    run.tally = tally
    by_entity = {a.entity_id: a for a in tally.first.values()}
    began = min(run.produced_wall.values(), default=0.0)
    samples: list[tuple[float, float, float | None]] = []
    for entity, seen in by_entity.items():
        produced = run.produced_wall.get(entity)
        if produced is None:
            run.unexpected_alerts += 1
            continue
        run.latencies_ms.append((seen.read_wall - produced) * 1000)
        detected = None
        if seen.created_ms is not None:
            detected = round(seen.created_ms - produced * 1000, 1)
            run.detect_ms.append(detected)
        samples.append((round(produced - began, 2), round(run.latencies_ms[-1], 1), detected))
    # When in the phase the slowest ones were sent: a cluster at the start is the
    # worker settling, one spread over the run is steady-state jitter.
    run.slowest = [(t, ms) for t, ms, _ in sorted(samples, key=lambda sample: -sample[1])[:5]]
    run.samples = samples


def wait_for_alerts(reader: AlertReader, expected: int, quiet: float = 10.0) -> None:
    """Until `expected` alerts are in, or none arrived for `quiet` s (a miss is reported,
    not waited for forever)."""
    last = reader.snapshot()[1]
    changed = time.monotonic()
    while reader.snapshot()[0] < expected:
        time.sleep(0.1)
        now_seen = reader.snapshot()[1]
        if now_seen != last:
            last, changed = now_seen, time.monotonic()
        elif time.monotonic() - changed > quiet:
            return
    time.sleep(1.0)  # one more commit interval: a duplicate would show up now


SETTLE_S = 2.0
"""The phase's first seconds, reported apart: the first alerts of a worker that has just
become ready wait for its stages' first fetches and transactions (up to ~2 s, measured),
which is start-up, not the steady rate the phase measures."""


def describe(run: LatencyRun) -> dict[str, Any]:
    from devtools.bench.report import latency_summary

    tally = run.tally
    settled = latency_summary([ms for t, ms, _ in run.samples if t >= SETTLE_S])
    starting = [ms for t, ms, _ in run.samples if t < SETTLE_S]
    return {
        **latency_summary(run.latencies_ms),
        "settled_p50_ms": settled["p50_ms"],
        "settled_p99_ms": settled["p99_ms"],
        "first_seconds_max_ms": round(max(starting), 1) if starting else None,
        "detected_p50_ms": latency_summary(run.detect_ms)["p50_ms"],
        "detected_p99_ms": latency_summary(run.detect_ms)["p99_ms"],
        "pairs_sent": run.pairs_sent,
        "alerts_seen": tally.unique if tally else 0,
        "alert_duplicates": tally.duplicates if tally else 0,
        "unexpected_alerts": run.unexpected_alerts,
        "events_sent": run.events_sent,
        "send_seconds": round(run.send_seconds, 2),
        "achieved_rate": round(run.events_sent / run.send_seconds, 1) if run.send_seconds else None,
        "late_sends": run.late_sends,
        "max_send_lag_ms": round(run.max_lag_ms, 1),
        "slowest_s_ms": run.slowest,
    }
