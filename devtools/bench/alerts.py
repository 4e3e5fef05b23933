"""A read_committed reader of one alerts topic, in a thread, timing each alert's arrival.

read_committed because that is what a downstream consumer (SIEM, pager) sees: with
exactly-once an alert is visible only once the worker's transaction commits, so the
latency this reader measures includes the commit interval, as it should. A thread, not
the main loop, so the arrival time of an alert is taken when the client hands it over,
not whenever the bench gets round to polling.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from app.alerts_view import field as alert_field
from app.engine import load_rule
from app.engine.timestamps import parse_timestamp_ms
from app.kafka import admin as kadmin
from app.kafka.settings import KafkaSettings

BENCH_RULE_ID = load_rule().rule_id
"""The bundled MSBuild rule, whose alerts the generator's oracle predicts."""


@dataclass
class SeenAlert:
    alert_id: str
    entity_id: str
    read_wall: float
    """time.time() when the reader received it."""
    created_ms: int | None
    """The alert's event.created: when the worker's engine completed the sequence."""


@dataclass
class AlertTally:
    """Unique alerts by alert.id plus every duplicate delivery (exactly-once should give 0)."""

    first: dict[str, SeenAlert] = field(default_factory=dict)
    deliveries: int = 0
    unreadable: int = 0
    other_rules: int = 0
    """Alerts of the other rules of a bench with --rules (not counted above)."""
    reached_at: float | None = None
    """perf_counter() when the unique count first reached the target."""

    @property
    def unique(self) -> int:
        return len(self.first)

    @property
    def duplicates(self) -> int:
        return self.deliveries - self.unique


class AlertReader:
    """Reads every partition of `topic` from the beginning until stopped."""

    def __init__(self, settings: KafkaSettings, topic: str, target: int | None = None) -> None:
        _, metadata = kadmin.connect(settings)
        partitions = sorted(metadata.topics[topic].partitions)
        self.consumer = Consumer(
            {
                **settings.confluent(),
                **kadmin.QUIET,
                "group.id": f"seqwatch-bench-alerts-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 10,
            }
        )
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self.target = target
        self.tally = AlertTally()
        self.lock = threading.Lock()
        self.reached = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-alerts", daemon=True)

    def start(self) -> AlertReader:
        self._thread.start()
        return self

    def stop(self) -> AlertTally:
        self._stop.set()
        self._thread.join(10)
        self.consumer.close()
        return self.tally

    def snapshot(self) -> tuple[int, int]:
        with self.lock:
            return self.tally.unique, self.tally.deliveries

    def _run(self) -> None:
        tally = self.tally
        while not self._stop.is_set():
            # The first record as soon as it is there, then whatever else is queued:
            # consume(n, timeout) alone waits out its timeout unless n records are in,
            # which added up to 50 ms of the reader's own to every latency measured.
            first = self.consumer.poll(0.05)
            if first is None:
                continue
            batch = [first, *self.consumer.consume(999, 0)]
            now = time.time()
            mono = time.perf_counter()
            with self.lock:
                for msg in batch:
                    if msg.error() is not None:
                        continue
                    seen = parse_alert(msg.value(), msg.key(), now)
                    if seen is OTHER_RULE:
                        tally.other_rules += 1
                        continue
                    tally.deliveries += 1
                    if seen is None:
                        tally.unreadable += 1
                        continue
                    tally.first.setdefault(seen.alert_id, seen)
                if (
                    self.target is not None
                    and tally.reached_at is None
                    and tally.unique >= self.target
                ):
                    tally.reached_at = mono
                    self.reached.set()


OTHER_RULE = SeenAlert("", "", 0.0, None)
"""parse_alert's answer for an alert of another rule than the bundled one."""


def parse_alert(value: bytes | None, key: bytes | None, read_wall: float) -> SeenAlert | None:
    """The fields the bench needs from one alert record; None if it is not an alert."""
    if not value:
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    ident = alert_field(doc, "alert.id")
    if not ident:
        return None
    if alert_field(doc, "rule.rule_id") != BENCH_RULE_ID:
        return OTHER_RULE  # another rule's (a bench with --rules): not what it counts
    entity = alert_field(doc, "process.entity_id") or (key.decode() if key else "")
    created = parse_timestamp_ms(alert_field(doc, "event.created"))
    return SeenAlert(str(ident), str(entity), read_wall, created)
