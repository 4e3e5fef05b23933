"""The state stage's batch runner: poison records set aside, nothing half-applied."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
from engine_helpers import T0, engine, net, start

from app.engine import Event, Source
from app.worker.batch import run_batch
from app.worker.failures import Failures
from app.worker.state import TableState


def _message(value: bytes | None, offset: int) -> Any:
    return SimpleNamespace(value=value, topic="g-events-by-entity", partition=0, offset=offset)


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
    assert [(m.offset, r.reason) for m, r in result.poisoned] == [
        (1, "repartition_format"),
        (2, "repartition_format"),
        (3, "repartition_format"),
    ]
    assert "format 2, this worker reads 1" in result.poisoned[2][1].detail
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
    assert [(m.offset, r.reason) for m, r in result.poisoned] == [(1, "state_stage_error")]
    assert "RuntimeError: a bug" in result.poisoned[0][1].detail
    assert len(result.alerts) == 1
    result.cache.flush()
    assert not [k for k in table if "{poison}" in k], "the failed event left no state"
    assert eng.stats.alerts == before.alerts + 1, "counters counted the good events once"


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
