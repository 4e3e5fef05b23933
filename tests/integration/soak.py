"""Does a worker's state stay flat over millions of events? A measurement, not a test.

    python -m tests.integration.soak --events 2000000 --ttl 60s [--bootstrap 127.0.0.1:9092]

Produces `--events` records into one input topic while one worker runs: background
records that cannot match (a Sysmon file event, ~700 bytes) and, every `--start-every`
records, an MSBuild start that never connects: the flood that must not grow state past
the TTL window. Event time advances 1 ms per record, so 2,000,000 records span 33
minutes of event time, 33 TTL windows of 60 s. Every few seconds it samples the
worker's resident memory, the size of its RocksDB directory and its state entries, and
prints them; the last line is one JSON object with the first-half / second-half maxima
and the largest value the worker wrote to its changelog (read back from the topic)
beside the bound the engine guarantees. `make soak` runs it against the local broker.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from app.engine import Engine, load_rule
from app.kafka.io import ensure_topic, producer_config
from app.kafka.settings import KafkaSettings
from devtools.synth import fixed as events
from tests.integration.harness import WorkerProcess, changelog_values


def background(n: int) -> bytes:
    return orjson.dumps(
        {
            "@timestamp": events.ts(n),
            "event": {"category": ["file"], "type": ["creation"], "code": "11"},
            "process": {
                "entity_id": f"{{b0b0b0b0-0000-0000-0000-{n % 5000:012d}}}",
                "pid": 3000 + n % 500,
                "name": "svchost.exe",
                "executable": r"C:\Windows\System32\svchost.exe",
            },
            "file": {"path": rf"C:\Windows\Temp\cab_{n}.tmp", "name": f"cab_{n}.tmp"},
            "host": {"name": "WS-SOAK-01", "os": {"family": "windows"}},
            "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_id": 11},
            "agent": {"type": "winlogbeat", "version": "7.10.2"},
            "ecs": {"version": "1.6.0"},
        }
    )


def child_pid(pid: int) -> int:
    """The supervised worker process (the `seqwatch worker` pid is its supervisor)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pid
    return int(children[0]) if children else pid


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def dir_mib(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a file compacted away meanwhile
                total += (Path(root) / name).stat().st_size
    return total / 1024 / 1024


def sample(worker: WorkerProcess, produced: int, began: float) -> dict[str, Any]:
    assert worker.proc is not None
    pid = child_pid(worker.proc.pid)
    return {
        "t_s": round(time.monotonic() - began, 1),
        "produced": produced,
        "read": int(worker.metric("seqwatch_events_in_total", 0.0)),
        "sequenced": int(worker.metric("seqwatch_sequenced_total")),
        "state_entries": int(worker.metric("seqwatch_state_entries")),
        "expired": int(worker.metric("seqwatch_expired_total")),
        "rss_mib": round(rss_mib(pid), 1),
        "rocksdb_mib": round(dir_mib(worker.data_dir), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--start-every", type=int, default=100)
    parser.add_argument("--ttl", default="60s")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    args = parser.parse_args()
    kafka = KafkaSettings(bootstrap=args.bootstrap)
    unique = uuid.uuid4().hex[:10]
    topic = f"soak-{unique}"
    tmp = Path(tempfile.mkdtemp(prefix="seqwatch-soak-"))
    ensure_topic(kafka, topic, 4)
    worker = WorkerProcess(
        kafka,
        tmp / "state",
        tmp / "worker.log",
        "--input-topics",
        topic,
        "--alerts-topic",
        f"alerts-{unique}",
        "--deadletter-topic",
        f"dead-{unique}",
        "--group-id",
        f"soak-{unique}",
        "--partitions",
        "4",
        "--ttl",
        args.ttl,
        "--lateness",
        "5s",
    ).start()
    samples: list[dict[str, Any]] = []
    try:
        worker.wait_ready()
        producer = Producer(producer_config(kafka, "lz4"))
        began = last = time.monotonic()
        for n in range(args.events):
            if n % args.start_every == 0:
                entity = events.entity(n, "soak")
                value, key = events.start(entity, n), entity.encode()
            else:
                value, key = background(n), None
            while True:
                try:
                    producer.produce(topic, value=value, key=key)
                    break
                except BufferError:
                    producer.poll(0.05)
            if n % 10_000 == 0:
                producer.poll(0)
                if time.monotonic() - last >= args.every:
                    last = time.monotonic()
                    samples.append(sample(worker, n, began))
                    print(samples[-1], flush=True)
        producer.flush(60)

        def caught_up() -> bool:
            read = worker.metric("seqwatch_events_in_total", 0.0)
            forwarded = worker.metric("seqwatch_forwarded_total")
            return read >= args.events and worker.metric("seqwatch_sequenced_total") >= forwarded

        while not caught_up():  # the state stage works through the forwarded starts
            worker.check_alive()
            time.sleep(args.every)
            samples.append(sample(worker, args.events, began))
            print(samples[-1], flush=True)
        samples.append(sample(worker, args.events, began))
    finally:
        worker.stop()
    values, largest = changelog_values(kafka, f"soak-{unique}")
    half = len(samples) // 2
    summary = {
        "events": args.events,
        "starts": args.events // args.start_every,
        "ttl": args.ttl,
        "seconds": samples[-1]["t_s"],
        "max_state_entries": {
            "first_half": max(s["state_entries"] for s in samples[:half] or samples),
            "second_half": max(s["state_entries"] for s in samples[half:]),
        },
        "max_rss_mib": {
            "first_half": max(s["rss_mib"] for s in samples[:half] or samples),
            "second_half": max(s["rss_mib"] for s in samples[half:]),
        },
        "max_rocksdb_mib": {
            "first_half": max(s["rocksdb_mib"] for s in samples[:half] or samples),
            "second_half": max(s["rocksdb_mib"] for s in samples[half:]),
        },
        "changelog": {
            "values": values,
            "largest_bytes": largest,
            "bound_bytes": Engine(load_rule()).max_state_bytes,
        },
        "final": samples[-1],
    }
    print(orjson.dumps(summary).decode())


if __name__ == "__main__":
    main()
