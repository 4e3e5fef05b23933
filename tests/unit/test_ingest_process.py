"""The ingest child's reports land in the parent's counters, as /metrics reads them."""

from __future__ import annotations

from types import SimpleNamespace

from app.engine import Engine, load_rule
from app.worker.ingest_process import IngestProcess, snapshot
from app.worker.metrics import WorkerStats
from app.worker.settings import WorkerSettings


def test_a_report_replaces_the_parents_ingest_counters() -> None:
    child = WorkerStats()
    child.events_in["winlogbeat"] = 1200
    child.rejects["not_json"] = 2
    child.deadlettered, child.dropped, child.forwarded, child.outages = 2, 1180, 18, 1
    child.delivery_failures["alerts"] = 3
    child.ingest_stall = {"stage": "ingest", "reason": "alerts: too large", "attempts": 3}
    engine = Engine(load_rule())
    engine.stats.key_too_long, engine.stats.trimmed["original"] = 4, 1
    ingest = SimpleNamespace(assignment=["winlogbeat:0"], outage_s=4.5, engine=engine)

    parent = WorkerStats()
    parent.sequenced, parent.alerts_sent = 7, 3  # the state stage's own: left alone
    handle = IngestProcess(WorkerSettings(), parent)
    handle._apply(snapshot(child, ingest))

    assert parent.events_in == {"winlogbeat": 1200}
    assert parent.rejects == {"not_json": 2}
    assert (parent.deadlettered, parent.dropped, parent.forwarded) == (2, 1180, 18)
    assert parent.outages == 1
    assert (parent.sequenced, parent.alerts_sent) == (7, 3)
    assert handle.assignment == ["winlogbeat:0"]
    assert handle.outage_s == 4.5
    assert parent.delivery_failures == {"alerts": 3}
    assert parent.ingest_stall == child.ingest_stall
    assert parent.ingest_engine is not None
    assert parent.ingest_engine["key_too_long"] == 4
    assert parent.ingest_engine["trimmed"] == {"original": 1}


def test_the_childs_last_error_becomes_the_stages_error() -> None:
    handle = IngestProcess(WorkerSettings(), WorkerStats())
    handle._apply({"error": "KafkaException: fatal"})
    assert handle.error is not None and "KafkaException: fatal" in str(handle.error)
