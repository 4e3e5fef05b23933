"""Fail loudly: a failure that could lose or duplicate data ends the worker process at once.

A send that Kafka refused (a changelog record, an alert, a dead letter) or a commit that
failed leaves the open transaction holding part of a batch's effects. Committing it would
publish state that claims work the alerts topic never got; carrying on past it would move
the offsets beyond the lost work. So the worker does neither: it records why, and exits
without committing (`os._exit`, no shutdown path that could commit). The supervisor
restarts it with backoff; the new process fences the old transactional ids (aborting what
was open), rebuilds its state from the changelog, and reads again from the committed
offsets: the work is redone, not lost.

The reason survives the restart in `<data-dir>/last-failure.json`, so a worker that fails
the same way again and again says so: `/healthz` answers 503 with the reason,
`seqwatch_failing` is 1, and the supervisor logs one line a minute. The record is cleared
once the state stage commits past the point where it failed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Literal, NoReturn

import orjson

log = logging.getLogger("seqwatch.worker")

EXIT_FAILED = 75
"""Exit code of a worker that stopped itself after a failure (EX_TEMPFAIL): restart it."""
FAILURE_FILE = "last-failure.json"
Clears = Literal["commit", "ready"]
"""What clears a failure record: a commit past it, or the worker ready again."""


def read_record(data_dir: Path) -> dict[str, Any] | None:
    try:
        record = orjson.loads((data_dir / FAILURE_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


class Failures:
    """The failure record of one worker's data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FAILURE_FILE
        self.record = read_record(data_dir)
        if self.record is not None:
            log.error(
                "restarted after failure %d (since %s): %s",
                self.record["count"],
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.record["first"])),
                self.record["reason"],
            )

    def fatal(
        self,
        reason: str,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        *,
        clears: Clears = "commit",
    ) -> NoReturn:
        """Record `reason` and end the process now, committing nothing.

        `clears`: "commit" (the record stays until the state stage commits past it) or
        "ready" (until the worker holds partitions and has restored them again: a failure
        to take part in the group, which an idle stream would never commit past)."""
        record = self.save(reason, topic, partition, offset, clears=clears)
        log.error(
            "worker cannot continue: %s; exiting without committing, so the work is redone "
            "from the last committed offsets after the restart (failure %d)",
            reason,
            record["count"],
        )
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(Exception):
                handler.flush()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(EXIT_FAILED)

    def save(
        self,
        reason: str,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        *,
        clears: Clears = "commit",
    ) -> dict[str, Any]:
        """Write the failure record (`fatal` does, and a run Faust ended by a crash)."""
        now = time.time()
        previous = self.record or {}
        record = {
            "reason": reason,
            "first": previous.get("first", now),
            "last": now,
            "count": int(previous.get("count", 0)) + 1,
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "clears": clears,
        }
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(orjson.dumps(record))
        self.record = record
        return record

    def progressed(
        self, committed: dict[tuple[str, int], int], assigned: set[tuple[str, int]]
    ) -> None:
        """The state stage committed `committed` offsets: clear a failure it got past.

        A failure at a known offset clears once that partition commits beyond it (or has
        moved to another worker, which redoes the work); any other once anything commits.
        """
        record = self.record
        if record is None or not committed:
            return
        where = (record.get("topic"), record.get("partition"))
        offset = record.get("offset")
        if offset is not None and where in assigned and committed.get(where, -1) <= offset:
            return
        self._clear()

    def _clear(self) -> None:
        record = self.record
        assert record is not None
        log.warning("recovered after %d failures: %s", record["count"], record["reason"])
        self.record = None
        with contextlib.suppress(OSError):
            self.path.unlink()

    def ready(self) -> None:
        """The worker holds partitions and has restored them: clear a "ready" failure."""
        record = self.record
        if record is None or record.get("clears") != "ready":
            return
        self._clear()

    def status(self) -> dict[str, Any] | None:
        return None if self.record is None else dict(self.record)
