"""How long a worker takes to come back after kill -9 while it holds N pending starts.

    python -m tests.integration.recovery_time --pending 10000 [--bootstrap 127.0.0.1:9092]

One worker reads N MSBuild starts (no connections yet) until their offsets are
committed, is killed with SIGKILL, and is started again on the same data directory
(which it discards, as after every unclean stop, and restores from the changelog). Then
the N connections are produced. It prints one JSON line: the time from the restart to
"ready" (group joined, state restored), to the first alert, and to the last of the N
alerts, and how many alerts were lost or duplicated. `make measure-recovery` runs it
against the local broker. A measurement, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
from confluent_kafka import Consumer, TopicPartition

from app.kafka import admin as kadmin
from app.kafka.settings import KafkaSettings
from devtools.synth import fixed as events
from tests.integration.harness import TopicReader, WorkerProcess, alert_id, produce


def committed_to_end(kafka: KafkaSettings, group: str, topic: str, partitions: int) -> bool:
    """Every partition's committed offset is at its end (a trailing marker allowed)."""
    consumer = Consumer({**kafka.confluent(), **kadmin.QUIET, "group.id": group})
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        committed = consumer.committed(tps, timeout=10)
        for tp in committed:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition))
            if high > 0 and tp.offset < high - 1:
                return False
        return True
    finally:
        consumer.close()


def wait(what: str, done: object, timeout: float, worker: WorkerProcess) -> float:
    began = time.monotonic()
    while not done():  # type: ignore[operator]
        worker.check_alive()
        if time.monotonic() - began > timeout:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    kafka = KafkaSettings(bootstrap=args.bootstrap)
    unique = uuid.uuid4().hex[:10]
    process_topic, network_topic = f"process-{unique}", f"network-{unique}"
    alerts, group = f"alerts-{unique}", f"recovery-{unique}"
    tmp = Path(tempfile.mkdtemp(prefix="seqwatch-recovery-"))

    def worker() -> WorkerProcess:
        return WorkerProcess(
            kafka,
            tmp / "state",
            tmp / "worker.log",
            "--input-topics",
            f"{process_topic},{network_topic}",
            "--alerts-topic",
            alerts,
            "--deadletter-topic",
            f"dead-{unique}",
            "--group-id",
            group,
            "--partitions",
            str(args.partitions),
            # The rule's max_signals (100 per 5 minutes per partition) would hold back
            # most of N alerts of one burst; this measures recovery, not the cap.
            "--alert-cap",
            "0",
        )

    ids = [events.entity(i, "rcv") for i in range(args.pending)]
    keys = [e.encode() for e in ids]
    first = worker().start()
    first.wait_ready()
    produce(kafka, process_topic, [events.start(e, i * 10) for i, e in enumerate(ids)], keys=keys)

    loaded = wait(
        "the starts to be processed",
        lambda: first.metric("seqwatch_sequenced_total") >= args.pending,
        600,
        first,
    )
    wait(
        "their offsets to commit",
        lambda: committed_to_end(kafka, group, f"{group}-events-by-entity", args.partitions),
        120,
        first,
    )
    first.stop(signal.SIGKILL)

    restarted_at = time.monotonic()
    second = worker().start()
    second.wait_ready(timeout=600)
    ready_s = time.monotonic() - restarted_at
    reader = TopicReader(kafka, alerts)
    produce(
        kafka, network_topic, [events.network(e, i * 10 + 5) for i, e in enumerate(ids)], keys=keys
    )
    first_alert_s = None
    deadline = time.monotonic() + 600
    while len(reader.records) < args.pending and time.monotonic() < deadline:
        reader.poll(0.2)
        if reader.records and first_alert_s is None:
            first_alert_s = time.monotonic() - restarted_at
        second.check_alive()
    all_alerts_s = time.monotonic() - restarted_at
    reader.poll(2.0)
    counts = Counter(alert_id(a) for a in reader.values())
    seen = {m.key().decode() for m in reader.records}
    second.stop()
    print(
        orjson.dumps(
            {
                "pending": args.pending,
                "partitions": args.partitions,
                "load_s": round(loaded, 1),
                "restart_to_ready_s": round(ready_s, 1),
                "restart_to_first_alert_s": round(first_alert_s or -1, 1),
                "restart_to_all_alerts_s": round(all_alerts_s, 1),
                "alerts": len(reader.records),
                "lost": len(set(ids) - seen),
                "duplicated": sum(n - 1 for n in counts.values() if n > 1),
            }
        ).decode()
    )
    sys.exit(0)


if __name__ == "__main__":
    main()
