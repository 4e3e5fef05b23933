"""The group watch's bound on a revocation: a worker stuck giving up its partitions stalls
its whole group (which waits for it up to the max poll interval) and detects nothing."""

from app.worker.faust_ext.transport import REVOKE_BOUND_S, revoke_overdue


def test_no_revocation_or_one_within_the_bound_is_fine() -> None:
    assert revoke_overdue(None, 1_000.0) is None
    assert revoke_overdue(100.0, 100.0 + REVOKE_BOUND_S) is None


def test_a_revocation_past_the_bound_is_named_with_its_duration() -> None:
    reason = revoke_overdue(100.0, 100.0 + REVOKE_BOUND_S + 1.5)
    assert reason == f"giving up its partitions has not finished in {REVOKE_BOUND_S + 1.5:.0f} s"
