"""A stage that cannot make progress says so, waits, and tries again: it never spins.

The ingest stage redoes a batch whose transaction failed (a record the broker refused, a
broker that went away). If the cause persists (an alerts topic whose `max.message.bytes`
is too small, an ACL missing) the same batch fails again and again: each attempt waits
longer (0.5 s doubling to 60 s), the reason is logged at most once a minute, and
`/healthz` and `seqwatch_stalled` show the stage stalled until an attempt succeeds.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger("seqwatch.worker")

MAX_BACKOFF_S = 60.0
LOG_EVERY_S = 60.0


class Stall:
    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.attempts = 0
        self.since: float | None = None
        self.reason: str | None = None
        self._logged = 0.0

    def failed(self, reason: str, stopping: threading.Event) -> None:
        """One more failed attempt: log (at most once a minute), then wait the backoff."""
        now = time.monotonic()
        self.attempts += 1
        self.reason = reason
        if self.since is None:
            self.since = time.time()
        backoff = min(MAX_BACKOFF_S, 0.5 * 2 ** (self.attempts - 1))
        if self.attempts == 1 or now - self._logged >= LOG_EVERY_S:
            self._logged = now
            log.error(
                "%s stage stalled (attempt %d, nothing committed past it): %s; retrying in %.1f s",
                self.stage,
                self.attempts,
                reason,
                backoff,
            )
        stopping.wait(backoff)

    def cleared(self) -> None:
        if self.attempts:
            log.warning(
                "%s stage made progress again after %d failed attempts", self.stage, self.attempts
            )
        self.attempts = 0
        self.since = None
        self.reason = None

    def status(self) -> dict[str, Any] | None:
        if not self.attempts:
            return None
        return {
            "stage": self.stage,
            "reason": self.reason,
            "since": self.since,
            "attempts": self.attempts,
        }
