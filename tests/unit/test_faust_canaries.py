"""Canaries: each fails when upstream code that one of seqwatch's Faust fixes relies on changes.

A fix overrides or wraps an upstream method whose behaviour it was measured against (the
defects F1..F13 of docs/faust-defects.md, and the group watch). The source of each such
method is pinned by a digest: an upgrade that changes one fails here, naming the fix to
re-check against the new code (and the fault tests to run), rather than changing
behaviour silently. The mechanism each fix uses (an entry point, a setting, a private
attribute) is checked too.
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

import aiokafka
import pytest
from aiokafka.consumer.group_coordinator import GroupCoordinator
from faust.tables.base import Collection
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.tables.table import Table
from faust.transport import by_url
from faust.transport import consumer as faust_consumer
from faust.transport import producer as faust_producer
from faust.transport.drivers import aiokafka as driver

from app.worker.faust_ext import transport, versions

UPSTREAM: list[tuple[str, Any, str, str]] = [
    # (fix, upstream callable, digest of its source, what the fix relies on)
    (
        "F1",
        faust_consumer.TransactionManager.send,
        "b8d126be9f10fc69",
        "picks the producer from the destination partition",
    ),
    (
        "F2",
        faust_consumer.Consumer.force_commit,
        "cc094614d22c70fb",
        "reads the acked offsets and commits them in one call",
    ),
    ("F2", faust_consumer.Consumer.commit, "a354437baaa08bf8", "commits through force_commit"),
    (
        "F3",
        faust_producer.ProducerBuffer._send_pending,
        "4a9d5f932b56bc68",
        "publishes one queued changelog write",
    ),
    (
        "F3",
        faust_producer.ProducerBuffer._handle_pending,
        "78d648030fd21016",
        "the background task sends queued writes through _send_pending",
    ),
    (
        "F3",
        faust_producer.Producer.__init__,
        "5c53a4b47aa1372b",
        "creates the buffer in __init__ and nowhere else",
    ),
    (
        "F4",
        Recovery.on_recovery_completed,
        "6ef567acf072e46d",
        "resumes partitions before seeking (our copy seeks first)",
    ),
    (
        "F4",
        Recovery._resume_streams,
        "d986a6710c1aca98",
        "the other way out of a recovery (our copy seeks first)",
    ),
    (
        "F4",
        TableManager.__dict__["recovery"].fget,
        "f0bf5de78b4c3d23",
        "creates the Recovery lazily in this property",
    ),
    (
        "F4",
        faust_consumer.Consumer._new_offset,
        "1d2c7ea89a7ad4f1",
        "returns None when the acked offsets have a hole",
    ),
    (
        "F5",
        driver.AIOKafkaConsumerThread._highwaters,
        "a7f4f97d9f32aca2",
        "reads the last stable offset from the fetch cache",
    ),
    (
        "F6",
        faust_consumer.Consumer.on_partitions_revoked,
        "d04b7ae72c6fc206",
        "drops the acked offsets of revoked partitions without committing",
    ),
    (
        "F6",
        driver.Producer.begin_transaction,
        "970978bd2a00bb12",
        "begins a transaction even when one is open",
    ),
    (
        "F7",
        driver.Producer.commit_transactions,
        "70091e6f431974e9",
        "the commit our override replaces",
    ),
    (
        "F8",
        driver.AIOKafkaConsumerThread._create_worker_consumer,
        "c2701bfc3e6f6cad",
        "hard-codes fetch_max_wait_ms=1500",
    ),
    (
        "F8",
        aiokafka.AIOKafkaConsumer.start,
        "2f1ba70443327538",
        "builds its fetcher from _fetch_max_wait_ms when it starts",
    ),
    (
        "F9",
        Table.on_key_set,
        "a370e35ca55c2c7e",
        "sends each write to the changelog (our table collects them instead)",
    ),
    (
        "F9",
        Table.on_key_del,
        "4f2900b2f9d24a08",
        "sends each delete to the changelog as a tombstone",
    ),
    (
        "F9",
        Collection._on_changelog_sent,
        "60122c86a120d82c",
        "persists the changelog offset on commit under exactly-once (our table does the same)",
    ),
    (
        "F10",
        Recovery._slurp_changelogs,
        "7825c7e50f766d5a",
        "ends a restore at last offset = end - 1, or after two empty 5 s polls",
    ),
    (
        "F10",
        Recovery._build_highwaters,
        "91b4cc0d3724ae7b",
        "takes the end offset minus one as the partition's highwater",
    ),
    (
        "F10",
        faust_consumer.ThreadDelegateConsumer._getmany,
        "f9d47aa9010b5ff2",
        "returns the client's records per partition (we note the last offset of each)",
    ),
    (
        "F15",
        driver.Producer.stop_transaction,
        "ba24cb80581302aa",
        "pops and stops a revoked partition's producer without its transaction lock",
    ),
    (
        "F15",
        faust_consumer.TransactionManager._stop_transactions,
        "7c38278582f539f0",
        "stops each revoked partition's producer through Producer.stop_transaction",
    ),
    (
        "watch",
        GroupCoordinator.check_errors,
        "ba6ca51ad34838d9",
        "raises the coordination task's error, or the one pushed to the user, at a fetch",
    ),
    (
        "watch",
        GroupCoordinator._push_error_to_user,
        "743ff515bd7e2e38",
        "parks an error in _pending_exception and waits until a fetch reads it",
    ),
    (
        "watch",
        GroupCoordinator.close,
        "f30d831089456312",
        "resolves _closing before the coordination task ends",
    ),
    (
        "ext",
        driver.Consumer._new_consumer_thread,
        "0870ec53dea75083",
        "the consumer thread class is chosen here",
    ),
]


def _digest(function: Any) -> str:
    return hashlib.sha256(
        inspect.getsource(getattr(function, "fun", function)).encode()
    ).hexdigest()[:16]


@pytest.mark.parametrize(
    ("fix", "function", "digest", "relies_on"),
    UPSTREAM,
    ids=[f"{fix}-{getattr(f, '__qualname__', '?')}" for fix, f, _, _ in UPSTREAM],
)
def test_upstream_code_a_fix_relies_on_is_unchanged(
    fix: str, function: Any, digest: str, relies_on: str
) -> None:
    assert _digest(function) == digest, (
        f"{getattr(function, '__qualname__', function)} changed upstream: fix {fix} relies on"
        f" it ({relies_on}); re-check docs/faust-defects.md {fix} and run the fault tests"
    )


def test_the_pinned_versions_are_installed() -> None:
    assert versions.mismatches() == []


def test_the_seqwatch_transport_is_found_by_its_entry_point() -> None:
    assert by_url("seqwatch://127.0.0.1:9092") is transport.Transport
    assert transport.Transport.TransactionManager is transport.TransactionManager


def test_faust_reads_the_current_event_from_the_context_variable_we_set() -> None:
    from faust.streams import current_event

    from app.worker.faust_ext.app import reset_current_event, set_current_event

    class Event:
        pass

    event = Event()
    token = set_current_event(event)
    try:
        assert current_event() is event
    finally:
        reset_current_event(token)
    assert current_event() is None


async def test_aiokafka_keeps_the_private_state_the_fixes_read() -> None:
    consumer = aiokafka.AIOKafkaConsumer(fetch_max_wait_ms=123)
    assert consumer._fetch_max_wait_ms == 123  # F8 sets it before start()
    producer = aiokafka.AIOKafkaProducer(transactional_id="canary")
    assert producer._txn_manager.is_in_transaction() is False  # F6, F7
    assert "_acked" in inspect.getsource(faust_consumer.Consumer._new_offset)  # F4 guard


async def test_a_commit_for_a_transaction_without_a_producer_commits_nothing_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The one skip in this layer, and why it is safe: with no producer for a
    transactional id, no send can have joined that transaction (sends create it through
    TransactionManager.send), so there is nothing to lose by not committing it, and its
    offsets are not reported as committed (a failure record is not cleared by them)."""
    from types import SimpleNamespace

    from faust.types import TP

    progressed: list[Any] = []
    failures = SimpleNamespace(progressed=lambda *a: progressed.append(a), fatal=None)
    app = SimpleNamespace(failures=failures, consumer=SimpleNamespace(assignment=lambda: set()))
    fake = SimpleNamespace(app=app, _transaction_producers={}, _trn_locks={})
    await transport.Producer.commit_transactions(
        fake,  # type: ignore[arg-type]
        {"g-1-0": {TP("t", 0): 10}},
        "g",
    )
    assert progressed == []
    assert "commit for unknown transaction g-1-0 skipped" in caplog.text
