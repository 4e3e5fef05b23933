"""Idle marks: a repartition partition at rest ends with a record, not a control marker.

F11 (docs/faust-defects.md): every transaction of the ingest stage ends the repartition
partitions it wrote with a commit (or abort) marker. No consumer is handed a marker, so
the state stage commits the offset after its last record, one short of the end, and its
group's lag rests at 1 per partition: a lag monitor never sees 0. Committing the client's
position past the marker instead lost alerts in three tries (a position read while a
rebalance moved records in flight).

Here the ingest stage, once its input has been quiet for IDLE_AFTER_S, appends one
record outside any transaction to each partition a transaction of its own wrote since
(`IDLE_MARK`, a tick of wall time 0, which moves no clock). The state stage reads it like
any record, does nothing with it and commits past it: the end of the partition. The mark
carries no data, so a mark lost or sent twice loses or doubles nothing; a failed one is
said in the log and sent again at the next quiet moment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, Producer

from app.engine.event import tick_bytes

log = logging.getLogger("seqwatch.ingest")

IDLE_MARK = tick_bytes(0)
IDLE_AFTER_S = 0.25
"""Input quiet this long after the last transaction that wrote a partition: mark it."""


class IdleMarks:
    """The partitions to mark and the plain (non-transactional) producer that marks them."""

    def __init__(self, config: dict[str, Any], topic: str, after_s: float = IDLE_AFTER_S) -> None:
        self.topic = topic
        self.after_s = after_s
        self.producer = Producer({**config, "enable.idempotence": True, "linger.ms": 0})
        self.pending: set[int] = set()
        """Partitions a transaction wrote since their last mark."""
        self.last_write = 0.0
        self.sent = 0
        self.failed = 0

    def wrote(self, partitions: Iterable[int]) -> None:
        """A transaction wrote to these: committed or aborted, a marker now ends them."""
        self.pending.update(partitions)
        self.last_write = time.monotonic()

    def poll(self, quiet: bool) -> None:
        """Once per loop; `quiet`: the last poll of the input returned nothing."""
        if quiet and self.pending and time.monotonic() - self.last_write >= self.after_s:
            for partition in sorted(self.pending):
                self.producer.produce(
                    self.topic,
                    key=b"",
                    value=IDLE_MARK,
                    partition=partition,
                    on_delivery=self._delivered,
                )
            self.pending.clear()
        self.producer.poll(0)

    def close(self, timeout: float = 5.0) -> None:
        self.producer.flush(timeout)

    def _delivered(self, err: KafkaError | None, msg: Any) -> None:
        if err is None:
            self.sent += 1
            return
        self.failed += 1
        self.pending.add(msg.partition())
        self.last_write = time.monotonic()
        log.warning(
            "idle mark to %s[%d] not written (%s): its group's lag reads 1 there until the"
            " next quiet moment",
            msg.topic(),
            msg.partition(),
            err.str(),
        )
