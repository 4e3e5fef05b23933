"""Table recovery that ends when the changelogs are read (F10), reads each one from its
start (F14) and positions the stream partitions before anything is fetched (F4).

Faust 0.15.3 resumes the stream partitions after a recovery *before* it seeks them to
their committed offsets (`Recovery.on_recovery_completed`, `_resume_streams`). While the
seek waits for the broker, the fetcher already hands out records aiokafka prefetched for
those partitions; the seek then rewinds, and the consumer's read-offset bookkeeping drops
the records it thinks it has seen: records skipped and the commit carried past them, or
the commit stuck forever behind the hole. The two ways out of a recovery are Faust's own
methods with the order changed (seek, then resume the flow, then the partitions): the
order is inside the method, so there is no smaller hook. Their upstream source is pinned
by a canary test, so an upgrade that changes them is noticed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Literal

from faust.tables.manager import TableManager as FaustTableManager
from faust.tables.recovery import Recovery as FaustRecovery
from mode import Service

END_CHECK_S = 0.1
"""How often a restore checks whether it has read its changelogs to their end (F10)."""


class EndSignal(asyncio.Event):
    """Faust's `signal_recovery_end`, knowing whether a restore is waiting on it.

    Faust sets it and clears it again at the top of its changelog loop, which can be 5 s
    later; a restore that began meanwhile found it still set and ended at once, having
    read nothing (a moved partition ran on empty or stale state: alerts lost or doubled,
    the fault test of group changes under load failed 2 runs of 2). The fast end below
    ends a restore only while one waits, and clears it again at once."""

    waiting = 0

    async def wait(self) -> Literal[True]:
        self.waiting += 1
        try:
            return await super().wait()
        finally:
            self.waiting -= 1

    def pulse(self) -> None:
        """Wake the waiting restore, and leave nothing set for the next one."""
        self.set()
        self.clear()


def unread(highwaters: Mapping[Any, int | None], offsets: Mapping[Any, int | None]) -> list[str]:
    """The changelog partitions a finished restore has not read to their end."""
    missed = []
    for tp, high in sorted(highwaters.items()):
        offset = offsets.get(tp)
        if high is not None and high >= 0 and (offset is None or offset < high):
            missed.append(f"{tp.topic}[{tp.partition}] at {offset} of {high}")
    return missed


class Recovery(FaustRecovery):
    @property
    def signal_recovery_end(self) -> EndSignal:
        if self._signal_recovery_end is None:
            self._signal_recovery_end = EndSignal()
        assert isinstance(self._signal_recovery_end, EndSignal)
        return self._signal_recovery_end

    @Service.task
    async def _end_at_the_markers(self) -> None:
        """F10: a restore ends once every changelog partition is read to its end.

        Faust counts a partition restored when the offset of the last record applied
        reaches the end offset minus one. Under exactly-once the last offset of a
        changelog is a transaction marker, never applied, so every restore after a
        crash or a rebalance waited for two empty 5 s polls before Faust's
        `detect_aborted_tx` compared the consumer's position with the end: 10-15 s per
        recovery. This checks every 100 ms, and ends a partition's restore once the
        client's position has passed the end itself (markers included), the last record
        the client returned was handed on by Faust's consumer loop (which can wait on a
        lock during a rebalance) and applied, and nothing moved since the previous check:
        everything below the end has been read and applied.

        The end offset Faust read when the restore began is checked again first (its
        `stable_ends`): the restore ends only where no transaction is open on the
        partition or still waiting for its commit markers. A restore that ended at an end
        read while an old owner's last commit was still writing its markers stopped
        before that transaction, whose input offsets were already committed: its
        pending starts were lost (one 16-partition run in four, before this check).
        """
        previous: dict[Any, int] | None = None
        while not self.should_stop:
            await self.sleep(END_CHECK_S)
            # Only while Faust waits for the end: its highwaters and offsets are this
            # restore's then, not the last one's.
            if not self.signal_recovery_end.waiting or not self.need_recovery():
                previous = None
                continue
            offsets = self.active_offsets
            waiting = {
                tp: high
                for tp, high in self.active_highwaters.items()
                if high is not None and offsets[tp] is not None and offsets[tp] < high
            }
            consumer = self.app.consumer
            read_to_end = self.tables.changelog_queue.empty()
            for tp, high in waiting.items():
                # every record the client returned was handed on and applied, and the
                # client's position is past the end: what is left below it are markers
                returned = consumer.returned.get(tp)
                applied = (
                    returned is not None
                    and consumer._read_offset.get(tp) == returned
                    and offsets[tp] >= returned
                )
                position = await consumer.position(tp)
                read_to_end = read_to_end and applied and position is not None and position > high
            now = {tp: offsets[tp] for tp in waiting}
            if not read_to_end or previous != now:
                previous = now if read_to_end else None
                continue
            ends = await consumer.stable_ends(list(waiting))
            moved = False
            for tp, high in waiting.items():
                end = ends.get(tp)
                if end is None or end - 1 != high:
                    moved = True  # a transaction open, or more committed since: read on
                    self.log.info(
                        "Changelog %s not at a stable end (%s, read %d): reading on",
                        tp,
                        "a transaction is open" if end is None else f"end now {end}",
                        high + 1,
                    )
                    if end is not None and end - 1 > high:
                        self.active_highwaters[tp] = end - 1
            previous = None
            if moved:
                continue
            for tp, high in waiting.items():
                self.log.info("Changelog %s read to its end (%d)", tp, high + 1)
                offsets[tp] = high
            if self.in_recovery and not self.need_recovery():
                self.flush_buffers()
                self._set_recovery_ended()
                self.signal_recovery_end.pulse()

    async def on_rebalance(
        self,
        assigned: Any,
        revoked: Any,
        newly_assigned: Any,
        generation_id: int = 0,
    ) -> None:
        """Faust's, then forgetting where every restore ended (F14): each assigned
        changelog partition is read again from its start.

        Faust keeps the offset a kept partition's last restore ended at and restores it
        incrementally, on top of local RocksDB. But RocksDB keeps the writes of a batch
        whose transaction a rebalance aborted (F13): a pending start deleted by an alert
        that never committed stays deleted, the connection is read again, and the alert
        is lost (the likeliest cause of the scale-out/in fault test's lost alerts, whose
        kept partitions' restores began at offsets 45-65 instead of -1). The changelog
        is compacted and bounded by the TTL, so a full read is short."""
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        # Faust's sets them from the last restore and from persisted offsets; its recovery
        # task reads them only after this returns (on_rebalance awaits nothing).
        for tp in self.active_offsets:
            self.active_offsets[tp] = None  # type: ignore[assignment]

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """Faust's `Recovery.on_recovery_completed`, with the seek before anything is fetched."""
        app = self.app
        missed = unread(self.active_highwaters, self.active_offsets)
        if missed and app.failures is not None:
            # Running on state a restore never read would lose or double alerts.
            app.failures.fatal(
                "a restore ended before its changelogs were read to their end ("
                + ", ".join(missed)
                + ")",
                clears="ready",
            )
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
        if not await self._seek_then_resume(generation_id):
            return
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    async def _resume_streams(self, generation_id: int = 0) -> None:
        """Faust's `Recovery._resume_streams`, with the seek before anything is fetched."""
        app = self.app
        await app.on_rebalance_complete.send()
        if not await self._seek_then_resume(generation_id):
            return
        self.tables.on_actives_ready()
        self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    async def _seek_then_resume(self, generation_id: int) -> bool:
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
        if app.failures is not None and assignment:
            app.failures.ready()
        return True


class TableManager(FaustTableManager):
    """The app's `TableManager` setting: Faust's, with the Recovery above."""

    @property
    def recovery(self) -> Any:
        if self._recovery is None:
            self._recovery = Recovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
