"""The Faust app, with the per-app state seqwatch's fixes share."""

from __future__ import annotations

import asyncio
import weakref
from contextvars import Token
from typing import Any

import faust
from faust.streams import _current_event

from app.worker.failures import Failures


class SeqwatchApp(faust.App):
    """A faust.App that also carries:

    - `event_lock`: held by the detect agent from reading a batch until all its effects
      are delivered; the commit (from reading the acked offsets to the end of the
      transaction) waits for it, so a transaction never holds half of a batch;
    - `failures`: the worker's failure record (app.worker.failures), which a failed
      commit ends the process through;
    - `restarting`: set once a restart has been asked for, so it is asked once.
    """

    def __init__(self, id: str, *, failures: Failures | None = None, **options: Any) -> None:
        super().__init__(id, **options)
        self.event_lock = asyncio.Lock()
        self.failures = failures
        self.restarting: asyncio.Future[Any] | None = None


def set_current_event(event: Any) -> Token[Any]:
    """Make `event` Faust's current event in this task: table writes, their changelog
    partition and sends (see transport.TransactionManager) follow it.

    Faust sets it while a stream iterates one event at a time, but not in the task that
    consumes `take_events` batches. `Stream._set_current_event` would also change the
    stream's own `current_event`, which take_events' buffering task reads: only the
    context variable is set here, in this task. Canary: test_faust_canaries.
    """
    return _current_event.set(weakref.ref(event))


def reset_current_event(token: Token[Any]) -> None:
    _current_event.reset(token)
