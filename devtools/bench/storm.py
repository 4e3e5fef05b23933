"""A storm of starts, a crash holding them, and the commits after: one worker's morning.

One phase, four figures, each what an operator would watch:

1. **storm**: `starts` MSBuild starts are already in the input when a worker starts (a
   build farm at 9:00); starts sequenced per second by the state stage, from the ingest
   stage's assignment until `/metrics` shows all of them sequenced and the consumer
   groups' committed offsets reach the end of their topics.
2. **recovery**: the worker is killed with `kill -9` holding those starts pending and
   started again on the same `--data-dir` (it discards its local state and restores it
   from the changelog): seconds to ready (`/healthz` 200), then the connections are
   produced: seconds from the restart to the first and to the last alert on the alerts
   topic (read_committed), and how many were lost or duplicated.
3. **idle commits**: seconds from the last alert until both consumer groups have
   committed every record (end offset minus committed offset, as
   `kafka-consumer-groups.sh` shows it: 0 for the ingest group, at most the one trailing
   transaction marker per partition for the state stage's group).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from app.kafka import admin as kadmin
from app.kafka.settings import KafkaSettings
from devtools.bench.alerts import AlertReader
from devtools.harness import WorkerProcess
from devtools.synth import fixed

POLL_S = 0.05


@dataclass
class StormRun:
    starts: int
    storm_s: float
    """Ingest assigned -> every start sequenced."""
    storm_committed_s: float
    """Ingest assigned -> every start sequenced and committed by both groups."""
    restart_to_ready_s: float
    restart_to_first_alert_s: float
    restart_to_all_alerts_s: float
    idle_commit_s: float
    """Last alert seen -> every record committed by both groups."""
    alerts: int
    lost: int
    duplicated: int

    @property
    def starts_per_s(self) -> float:
        return self.starts / self.storm_s

    def to_json(self) -> dict[str, Any]:
        return {
            "starts": self.starts,
            "starts_per_s": round(self.starts_per_s),
            "storm_s": round(self.storm_s, 2),
            "storm_committed_s": round(self.storm_committed_s, 2),
            "restart_to_ready_s": round(self.restart_to_ready_s, 2),
            "restart_to_first_alert_s": round(self.restart_to_first_alert_s, 2),
            "restart_to_all_alerts_s": round(self.restart_to_all_alerts_s, 2),
            "idle_commit_s": round(self.idle_commit_s, 2),
            "alerts": self.alerts,
            "lost": self.lost,
            "duplicated": self.duplicated,
        }


def group_lag(settings: KafkaSettings, group: str, topics: dict[str, int]) -> int:
    """End offset minus committed offset, summed over the topics' partitions."""
    consumer = Consumer({**settings.confluent(), **kadmin.QUIET, "group.id": group})
    try:
        tps = [TopicPartition(t, p) for t, n in topics.items() for p in range(n)]
        lag = 0
        for tp in consumer.committed(tps, timeout=10):
            _, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=10
            )
            lag += max(0, high - max(tp.offset, 0))
        return lag
    finally:
        consumer.close()


def _produce(settings: KafkaSettings, topic: str, values: list[bytes], keys: list[bytes]) -> None:
    producer = Producer({**settings.confluent(), "linger.ms": 20, "compression.type": "lz4"})
    for key, value in zip(keys, values, strict=True):
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(60) != 0:
        raise RuntimeError(f"could not produce the storm's records to {topic}")


def _until(what: str, done: Callable[[], bool], worker: WorkerProcess, timeout: float) -> float:
    began = time.perf_counter()
    while not done():
        worker.check_alive()
        if time.perf_counter() - began > timeout:
            raise RuntimeError(f"storm phase: timed out waiting for {what}")
        time.sleep(POLL_S)
    return time.perf_counter()


def run_storm(
    settings: KafkaSettings,
    *,
    starts: int,
    names: dict[str, str],
    data_dir: Path,
    log_path: Path,
    partitions: int = 4,
    extra: tuple[str, ...] = (),
    on_started: Callable[[WorkerProcess], None] | None = None,
    timeout: float = 600.0,
) -> StormRun:
    """`names`: process, network, alerts, deadletter topics and the group id, all fresh."""
    group = names["group"]
    process, network, alerts = names["process"], names["network"], names["alerts"]
    client, _ = kadmin.connect(settings)
    for topic in (process, network, alerts, names["deadletter"]):
        kadmin.create_topic(client, topic, partitions, 1, {"retention.ms": "-1"})

    def worker() -> WorkerProcess:
        data_dir.mkdir(parents=True, exist_ok=True)
        w = WorkerProcess(
            settings,
            data_dir,
            log_path,
            "--input-topics",
            f"{process},{network}",
            "--alerts-topic",
            alerts,
            "--deadletter-topic",
            names["deadletter"],
            "--group-id",
            group,
            "--partitions",
            str(partitions),
            "--alert-cap",
            "0",  # the rule's cap (100 per 5 min per partition) would hold back the storm
            *extra,
        ).start()
        if on_started is not None:
            on_started(w)
        return w

    ids = [fixed.entity(i, "strm") for i in range(starts)]
    keys = [e.encode() for e in ids]
    _produce(settings, process, [fixed.start(e, i) for i, e in enumerate(ids)], keys)
    lag_topics = {
        f"{group}.ingest": {process: partitions, network: partitions},
        group: {f"{group}-events-by-entity": partitions},
    }

    def caught_up() -> bool:
        # The repartition topic is written in transactions: each partition ends with a
        # commit marker the state stage never sees, so its group's lag rests at 1 per
        # partition (docs/faust-defects.md, F11); the ingest group's inputs have none.
        return group_lag(settings, f"{group}.ingest", lag_topics[f"{group}.ingest"]) == 0 and (
            group_lag(settings, group, lag_topics[group]) <= partitions
        )

    first = worker()
    t0, _ = first.wait_ingest_assigned()
    sequenced = _until(
        "the storm's starts to be sequenced",
        lambda: first.metric("seqwatch_sequenced_total", 0.0) >= starts,
        first,
        timeout,
    )
    committed = _until("the storm's offsets to commit", caught_up, first, timeout)
    first.stop(signal.SIGKILL)

    reader = AlertReader(settings, alerts, target=starts).start()
    restarted = time.perf_counter()
    second = worker()
    try:
        second.wait_ready(timeout=timeout)
        ready = time.perf_counter()
        _produce(
            settings,
            network,
            [fixed.network(e, i + 5) for i, e in enumerate(ids)],
            keys,
        )
        first_alert = _until("the first alert", lambda: reader.snapshot()[0] > 0, second, timeout)
        if not reader.reached.wait(timeout):
            raise RuntimeError(f"storm phase: {reader.snapshot()[0]} of {starts} alerts")
        last_alert = time.perf_counter()
        idle = _until("the lag to reach 0 after the last alert", caught_up, second, timeout)
        time.sleep(1.0)  # a late duplicate would show by now (commits every 100 ms)
    finally:
        tally = reader.stop()
        second.stop()
    seen = {a.entity_id for a in tally.first.values()}
    return StormRun(
        starts=starts,
        storm_s=sequenced - t0,
        storm_committed_s=committed - t0,
        restart_to_ready_s=ready - restarted,
        restart_to_first_alert_s=first_alert - restarted,
        restart_to_all_alerts_s=last_alert - restarted,
        idle_commit_s=idle - last_alert,
        alerts=tally.unique,
        lost=len(set(ids) - seen),
        duplicated=tally.duplicates,
    )
