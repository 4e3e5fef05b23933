"""The state stage's batch runner: poison records set aside, nothing half-applied."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
from engine_helpers import T0, engine, net, start

from app.engine import Event, Source
from app.engine.event import BUNDLE_PREFIX
from app.worker.batch import run_batch
from app.worker.failures import Failures
from app.worker.ingest import (
    BATCH_FORWARDS,
    BATCH_RECORDS,
    BUNDLE_BYTES,
    BUNDLE_EVENTS,
    PART_RECORDS,
    bundles,
    take_more,
)
from app.worker.state import TableState


def _message(value: bytes | None, offset: int) -> Any:
    return SimpleNamespace(
        value=value, key=None, topic="g-events-by-entity", partition=0, offset=offset, timestamp=0
    )


def _repartitioned(doc: dict[str, Any], offset: int) -> bytes:
    event = engine().decode(orjson.dumps(doc), Source("winlogbeat", 0, offset))
    assert isinstance(event, Event)
    return event.to_bytes()


def test_unreadable_records_are_set_aside_and_the_rest_alerts() -> None:
    eng = engine()
    table: dict[str, Any] = {}
    messages = [
        _message(_repartitioned(start(t=T0), 0), 0),
        _message(b"garbage", 1),
        _message(None, 2),
        _message(orjson.dumps({"v": 2, "k": "x"}), 3),
        _message(_repartitioned(net(t=T0 + 5), 4), 4),
    ]
    result = run_batch(eng, TableState(table), messages, "0")
    assert len(result.alerts) == 1
    assert [(m.offset, r.reason) for m, _, r in result.poisoned] == [
        (1, "repartition_format"),
        (2, "repartition_format"),
        (3, "repartition_format"),
    ]
    assert "format 2, this worker reads 1" in result.poisoned[2][2].detail
    assert [v for _, v, _ in result.poisoned] == [b"garbage", b"", orjson.dumps({"v": 2, "k": "x"})]
    assert result.sequenced == 2


def test_an_event_the_engine_fails_on_is_undone_and_the_batch_runs_without_it() -> None:
    eng = engine()
    real = eng.process
    bad = orjson.loads(_repartitioned(start(guid="{poison}", t=T0 + 1), 1))

    def process(event: Event, state: Any, scope: str = "0") -> list[dict[str, Any]]:
        alerts = real(event, state, scope)  # applied to the batch's state first ...
        if event.key == "{poison}":
            raise RuntimeError("a bug")  # ... then fails: nothing of it may remain
        return alerts

    eng.process = process  # type: ignore[method-assign]
    table: dict[str, Any] = {}
    messages = [
        _message(_repartitioned(start(t=T0), 0), 0),
        _message(orjson.dumps(bad), 1),
        _message(_repartitioned(net(t=T0 + 5), 2), 2),
    ]
    before = eng.stats.copy()
    result = run_batch(eng, TableState(table), messages, "0")
    assert [(m.offset, r.reason) for m, _, r in result.poisoned] == [(1, "state_stage_error")]
    assert "RuntimeError: a bug" in result.poisoned[0][2].detail
    assert len(result.alerts) == 1
    result.cache.flush()
    assert not [k for k in table if "{poison}" in k], "the failed event left no state"
    assert eng.stats.alerts == before.alerts + 1, "counters counted the good events once"


def _bundled(docs: list[dict[str, Any]], *, partitions: int = 1) -> list[Any]:
    """The repartition records the ingest stage sends for these docs, as messages."""
    candidates = []
    for offset, doc in enumerate(docs):
        event = engine().decode(orjson.dumps(doc), Source("winlogbeat", 0, offset))
        assert isinstance(event, Event)
        record_ms = 1_700_000_000_000 + offset
        candidates.append(
            (event.timestamp_ms, event.key.encode(), event.to_bytes(record_ms), record_ms)
        )
    candidates.sort(key=lambda c: c[0])
    return [
        SimpleNamespace(
            value=value,
            key=key,
            topic="g-events-by-entity",
            partition=p,
            offset=i,
            timestamp=ts / 1000,
        )
        for i, (p, key, value, ts) in enumerate(bundles(candidates, partitions))
    ]


def test_bundles_carry_every_event_in_order_and_its_own_record_time() -> None:
    docs = [start(guid=f"{{g{i}}}", t=T0 + i) for i in range(30)]
    docs += [net(guid=f"{{g{i}}}", t=T0 + 100 + i) for i in range(30)]
    messages = _bundled(docs, partitions=4)
    assert len(messages) == 4, "one bundle per state partition"
    assert all(m.value.startswith(BUNDLE_PREFIX) for m in messages)
    alerts = []
    for partition in range(4):
        mine = [m for m in messages if m.partition == partition]
        result = run_batch(engine(), TableState({}), mine, str(partition))
        alerts += result.alerts
    assert len(alerts) == 30
    # latency counts from each network event's own input record, not the bundle's
    assert sorted(round(s * 1000) for *_, s in alerts) == [
        1_700_000_000_000 + 30 + i for i in range(30)
    ]


def test_bundles_split_by_count_and_bytes() -> None:
    candidates = [(i, b"k", b"x" * 100, None) for i in range(2 * BUNDLE_EVENTS + 7)]
    records = bundles(candidates, 1)
    assert [r[2].count(b"x" * 100) for r in records] == [BUNDLE_EVENTS, BUNDLE_EVENTS, 7]
    big = [(i, b"k", b"y" * (BUNDLE_BYTES // 2 + 1), None) for i in range(3)]
    assert len(bundles(big, 1)) == 3, "never past the byte bound"
    assert bundles(big, 1)[0][2] == b"y" * (BUNDLE_BYTES // 2 + 1), "one event goes alone"


def test_one_poisoned_event_of_a_bundle_is_dead_lettered_alone() -> None:
    eng = engine()
    real = eng.process

    def process(event: Event, state: Any, scope: str = "0") -> list[dict[str, Any]]:
        alerts = real(event, state, scope)
        if event.key == "{poison}":
            raise RuntimeError("a bug")
        return alerts

    eng.process = process  # type: ignore[method-assign]
    docs = [start(t=T0), start(guid="{poison}", t=T0 + 1), net(t=T0 + 5)]
    (message,) = _bundled(docs)
    table: dict[str, Any] = {}
    result = run_batch(eng, TableState(table), [message], "0")
    assert len(result.alerts) == 1, "the bundle's other events still alert"
    ((_, value, reject),) = result.poisoned
    assert reject.reason == "state_stage_error"
    assert orjson.loads(value)["k"] == "{poison}", "only the poisoned event is set aside"
    result.cache.flush()
    assert not [k for k in table if "{poison}" in k]


def test_a_failure_clears_once_its_partition_commits_past_it(tmp_path: Any) -> None:
    record = {
        "reason": "refused",
        "first": 1.0,
        "last": 2.0,
        "count": 3,
        "topic": "t",
        "partition": 1,
        "offset": 40,
    }
    (tmp_path / "last-failure.json").write_bytes(orjson.dumps(record))
    failures = Failures(tmp_path)
    assigned = {("t", 0), ("t", 1)}
    failures.progressed({("t", 0): 99}, assigned)
    assert failures.status() is not None, "another partition's progress does not count"
    failures.progressed({("t", 1): 40}, assigned)
    assert failures.status() is not None, "committed up to the failed batch, not past it"
    failures.progressed({("t", 1): 41}, assigned)
    assert failures.status() is None
    assert not (tmp_path / "last-failure.json").exists()


def test_a_group_failure_clears_once_the_worker_is_ready_again(tmp_path: Any) -> None:
    """An idle stream never commits: a failure to take part in the group clears when the
    worker holds partitions again; any other failure still waits for a commit past it."""
    failures = Failures(tmp_path)
    failures.save("no group", clears="ready")
    again = Failures(tmp_path)  # the restarted process reads it back
    assert again.status() is not None and again.status()["count"] == 1  # type: ignore[index]
    again.ready()
    assert again.status() is None
    assert not (tmp_path / "last-failure.json").exists()
    failures = Failures(tmp_path)
    failures.save("refused", "t", 1, 40)
    failures.ready()
    assert failures.status() is not None, "only a commit past it clears a failed batch"


def test_an_ingest_transaction_takes_parts_of_its_poll_up_to_its_bounds() -> None:
    assert not take_more(0, 250, 3)  # the poll is read
    assert take_more(1, BATCH_RECORDS - 1, 50)  # records left, under both bounds
    assert not take_more(PART_RECORDS, BATCH_RECORDS, 250)  # bounded by records read
    assert not take_more(PART_RECORDS, 1, BATCH_FORWARDS)  # a storm: the state stage needs them
