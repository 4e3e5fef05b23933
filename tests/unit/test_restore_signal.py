"""The end of a restore (F10): the signal that ends one must not end the next one too, and
a restore that ends with changelog left unread is named, so that the worker stops rather
than run on state it never read."""

from __future__ import annotations

import asyncio

from faust.types import TP

from app.worker.faust_ext.recovery import EndSignal, unread


async def test_a_pulse_wakes_the_waiting_restore_and_leaves_nothing_set() -> None:
    signal = EndSignal()
    waiter = asyncio.ensure_future(signal.wait())
    while not signal.waiting:  # the restore reaches its wait
        await asyncio.sleep(0)
    signal.pulse()
    assert not signal.is_set(), "the next restore would end at once, reading nothing"
    assert await waiter is True
    assert signal.waiting == 0


def test_no_waiting_restore_is_seen_before_one_waits() -> None:
    assert EndSignal().waiting == 0


def test_partitions_a_restore_has_not_read_to_their_end_are_named() -> None:
    done, short, fresh, empty = (TP("changelog", p) for p in range(4))
    highwaters = {done: 99, short: 1_256, fresh: 40, empty: -1}
    offsets = {done: 99, short: 1_000, fresh: -1, empty: -1}
    assert unread(highwaters, offsets) == [
        "changelog[1] at 1000 of 1256",
        "changelog[2] at -1 of 40",
    ]
    assert unread({done: 99, empty: -1}, offsets) == []
