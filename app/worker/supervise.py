"""Restart the worker process when it fails, as a process supervisor would.

Some failures leave Faust's Kafka clients unable to recover inside the process (after a
broker outage its consumer rediscovers the coordinator but never rejoins the group), and
a crashed worker must come back without an operator. Restarting is safe because a
worker that did not stop cleanly rebuilds its state from the changelog (see
`run.discard_unclean_state`) and exactly-once transactions fence the old instance.

The worker runs in a forked child that dies with its parent (PR_SET_PDEATHSIG), so
`kill -9` of the `seqwatch worker` pid still kills everything at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from app.errors import SeqwatchError
from app.worker.failures import EXIT_FAILED, read_record

log = logging.getLogger("seqwatch.supervisor")

PR_SET_PDEATHSIG = 1
NO_RESTART_CODES = (0, 2)  # clean stop, or a settings error that a restart cannot fix


def supervise(
    run: Callable[[], int], max_backoff: float = 60.0, data_dir: Path | None = None
) -> int:
    """Run `run()` in a child process; restart it on failure until told to stop.

    A child that stopped itself after a failure (`failures.EXIT_FAILED`) left its reason
    in `data_dir`; while it keeps failing, the reason is logged once a minute, not once
    per restart, and the backoff grows to `max_backoff`.
    """
    state = {"stop": False, "child": 0}
    last_said = 0.0

    def forward(signum: int, frame: FrameType | None) -> None:
        state["stop"] = True
        if state["child"]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(state["child"], signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    backoff = 1.0
    restarts = 0
    while True:
        started = time.monotonic()
        os.environ["SEQWATCH_RESTARTS"] = str(restarts)
        parent = os.getpid()
        child = os.fork()
        if child == 0:
            os._exit(_child(run, parent))
        state["child"] = child
        code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
        state["child"] = 0
        if state["stop"]:
            return code if code >= 0 else 0
        if code in NO_RESTART_CODES:
            return code
        if time.monotonic() - started > 60:
            backoff = 1.0
        restarts += 1
        record = read_record(data_dir) if code == EXIT_FAILED and data_dir else None
        if record is None:
            log.error("worker exited with code %d; restart %d in %.0f s", code, restarts, backoff)
        elif time.monotonic() - last_said >= 60 or record["count"] == 1:
            last_said = time.monotonic()
            log.error(
                "worker failing (%d times since %s): %s; restart %d in %.0f s",
                record["count"],
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record["first"])),
                record["reason"],
                restarts,
                backoff,
            )
        deadline = time.monotonic() + backoff
        while time.monotonic() < deadline and not state["stop"]:
            time.sleep(0.1)
        if state["stop"]:
            return 0
        backoff = min(backoff * 2, max_backoff)


def _child(run: Callable[[], int], parent: int) -> int:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    die_with(parent)
    try:
        return run()
    except SeqwatchError as exc:
        print(f"seqwatch: {exc}", file=sys.stderr)
        return exc.exit_code
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def die_with(parent: int) -> None:
    """Ask Linux to SIGKILL us when the supervisor dies (no orphaned worker)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
