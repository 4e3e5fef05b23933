"""Notice when Faust's consumer loses records before the agent sees them, and restart.

Faust (faust-streaming 0.15) can drop fetched records on the floor: `Consumer.getmany`
yields a record only if its partition is still in the active set when the record's turn
comes, and nothing seeks back when it is not (faust#216, #221 describe the same family).
Its offset bookkeeping is safe about it: the commit of that partition stops just before
the first lost record (`_new_offset` will not commit past a hole in the acked offsets
that is not a known gap: a transaction marker or aborted records). But the agent keeps
processing, so the partition's transaction never commits again: alerts and state writes
pile up invisible to read_committed readers until the worker dies. The kill -9 test
caught it: two connections missing, and every later alert of that partition held back.

The fix here is Kafka Streams' answer to a task it cannot trust: stop and restore. The
first time `_new_offset` refuses to commit because of such a hole, the worker crashes on
purpose; the supervisor restarts it, the local state is rebuilt from the changelog, and
the partition is read again from its committed offset. Reading events again is safe: the
state already holds the effects of the events after the hole, and the engine recognises
each of them as an exact duplicate (no second alert), while the lost records now reach it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("seqwatch.worker")
_installed = False


class RecordsSkipped(RuntimeError):
    """Records of a partition never reached the agent: restart to read them again."""


def install() -> None:
    global _installed
    if _installed:
        return
    from faust.transport.consumer import Consumer

    original = Consumer._new_offset

    def _new_offset(self: Any, tp: Any) -> int | None:
        offset: int | None = original(self, tp)
        if offset is None:
            hole = skipped(self._acked.get(tp), self._committed_offset.get(tp))
            if hole is not None:
                _restart(self.app, tp, hole)
        return offset

    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    _installed = True


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
