"""The check that notices records Faust's consumer lost before the agent saw them."""

from __future__ import annotations

from app.worker.faust_ext.transport import skipped


def test_nothing_acked_or_nothing_committed_is_no_hole() -> None:
    assert skipped(None, 10) is None
    assert skipped([], 10) is None
    assert skipped([12, 13], None) is None


def test_acked_from_the_committed_offset_is_no_hole() -> None:
    assert skipped([10, 11, 12], 10) is None


def test_one_missing_offset_is_a_transaction_marker() -> None:
    assert skipped([11, 12], 10) is None


def test_records_missing_below_the_lowest_acked_offset_are_reported() -> None:
    # Committed 21, the agent acked 23.. (21 and 22 never reached it).
    assert skipped([25, 23, 24], 21) == (21, 22)
