"""Keep Faust's consumer from losing records around recovery, and restart if it still does.

Faust (faust-streaming 0.15) resumes the stream partitions after a recovery *before* it
seeks them to their committed offsets (`Recovery.on_recovery_completed`). While the seek waits
for the broker, its fetcher already hands out records that aiokafka prefetched for those
partitions; the seek then rewinds, and the consumer's read-offset bookkeeping drops the
records it thinks it has seen. The kill -9 test caught both outcomes: records skipped
and the commit carried past them as if they were a gap (alerts lost for good), or the
commit stuck forever behind the hole (every later alert of the partition held back in
an open transaction). faust#216 and #221 describe the same family.

A second fault loses state on a rebalance: with exactly-once, Faust takes the end of each
changelog partition to restore from `last_stable_offset`, a value aiokafka only learns
from a fetch response. For a partition just assigned it is still unknown (-1), so the new
owner restores *nothing* and runs on empty state: the scale-out test lost every start
that was pending when its partition moved. `_highwaters` now asks the broker
(ListOffsets with read_committed isolation answers the last stable offset).

Four measures:
- `on_recovery_completed` and `_resume_streams` (the two ways out of a recovery) are
  replaced by versions that seek first, then resume the flow, then the partitions:
  nothing is handed out for a stream partition before it is positioned.
- `_highwaters` asks the broker for the last stable offsets.
- As a safety net, the first time `_new_offset` refuses to commit because of a hole in
  the acked offsets that is not a known gap (a transaction marker, aborted records),
  the worker crashes on purpose; the supervisor restarts it, the state is rebuilt from
  the changelog and the partition is read again from its committed offset. Events after
  the hole are then seen twice, which the engine handles as exact duplicates.
- The worker consumer's fetch wait is 100 ms instead of Faust's hard-coded 1,500 ms: a
  read_committed fetch that finds nothing stable yet waits it out in full (latency).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("seqwatch.worker")
_installed = False
FETCH_MAX_WAIT_MS = 100


class RecordsSkipped(RuntimeError):
    """Records of a partition never reached the agent: restart to read them again."""


def install() -> None:
    global _installed
    if _installed:
        return
    from faust.tables.recovery import Recovery
    from faust.transport.consumer import Consumer
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    original = Consumer._new_offset

    def _new_offset(self: Any, tp: Any) -> int | None:
        offset: int | None = original(self, tp)
        if offset is None:
            hole = skipped(self._acked.get(tp), self._committed_offset.get(tp))
            if hole is not None:
                _restart(self.app, tp, hole)
        return offset

    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    Recovery._resume_streams = _resume_streams  # type: ignore[method-assign]
    Recovery.on_recovery_completed = on_recovery_completed  # type: ignore[method-assign]
    AIOKafkaConsumerThread._highwaters = _highwaters  # type: ignore[method-assign]
    create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer

    def _create_worker_consumer(self: Any, *args: Any, **kwargs: Any) -> Any:
        consumer = create_worker_consumer(self, *args, **kwargs)
        # Faust hard-codes fetch_max_wait_ms=1500. Under read_committed a fetch that
        # finds nothing stable yet waits that long before the broker answers, which put
        # p99 detection latency past a second; the fetcher reads it at start().
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]
    _installed = True


async def _highwaters(self: Any, partitions: list[Any]) -> Any:
    """End offsets from the broker: the last stable offset under read_committed."""
    return await self._ensure_consumer().end_offsets(partitions)


async def on_recovery_completed(self: Any, generation_id: int = 0) -> None:
    """Faust's `Recovery.on_recovery_completed`, with the seek before anything is fetched."""
    app = self.app
    self.log.info("Restore complete!")
    await app.on_rebalance_complete.send()
    self._set_recovery_ended()
    callbacks = [
        asyncio.ensure_future(
            table.on_recovery_completed(
                self.actives_for_table[table], self.standbys_for_table[table]
            )
        )
        for table in self.tables.values()
    ]
    if callbacks:
        await asyncio.wait(callbacks)
    if not await _seek_then_resume(self, generation_id):
        return
    self.tables.on_actives_ready()
    if not app.assignor.assigned_standbys():
        self.tables.on_standbys_ready()
    app.on_rebalance_end()
    self.log.info("Worker ready")


async def _seek_then_resume(self: Any, generation_id: int) -> bool:
    """Seek the stream partitions, then resume the flow, then the partitions.

    False (and nothing resumed) when another rebalance has begun meanwhile.
    """
    app = self.app
    consumer = app.consumer
    assignment = consumer.assignment()
    if app.consumer_generation_id != generation_id:
        self.log.warning("Recovery rebalancing again")
        return False
    streams = {tp for tp in assignment if not self._is_changelog_tp(tp)}
    if assignment:
        self.log.info("Seek stream partitions to committed offsets.")
        await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
    self.completed.set()
    app.flow_control.resume()
    consumer.resume_flow()
    if streams:
        consumer.resume_partitions(streams)
    await app._fetcher.maybe_start()
    return True


async def _resume_streams(self: Any, generation_id: int = 0) -> None:
    """Faust's `Recovery._resume_streams`, with the seek before anything is fetched."""
    app = self.app
    await app.on_rebalance_complete.send()
    if not await _seek_then_resume(self, generation_id):
        return
    self.tables.on_actives_ready()
    self.tables.on_standbys_ready()
    app.on_rebalance_end()
    self.log.info("Worker ready")


def skipped(acked: list[int] | None, committed: int | None) -> tuple[int, int] | None:
    """The offsets [first, last] that were never acked below the lowest acked one.

    Mirrors the condition under which Faust's `_new_offset` returns None with acked
    offsets waiting: one missing offset at the head is a transaction marker and fine.
    """
    if not acked or not committed:
        return None
    lowest = min(acked)
    if lowest - committed > 1:
        return committed, lowest - 1
    return None


def _restart(app: Any, tp: Any, hole: tuple[int, int]) -> None:
    if getattr(app, "_seqwatch_restart", None) is not None:
        return  # already on its way down
    first, last = hole
    message = (
        f"offsets {first}-{last} of {tp.topic}[{tp.partition}] never reached the detect "
        "agent (lost by the Faust consumer); restarting to read them again from the "
        "committed offset"
    )
    log.error(message)
    app._seqwatch_restart = asyncio.ensure_future(app.crash(RecordsSkipped(message)))
