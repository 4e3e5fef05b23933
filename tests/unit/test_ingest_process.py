"""The ingest child's reports land in the parent's counters, as /metrics reads them."""

from __future__ import annotations

from types import SimpleNamespace

from app.worker.ingest_process import IngestProcess, snapshot
from app.worker.metrics import WorkerStats
from app.worker.settings import WorkerSettings


def test_a_report_replaces_the_parents_ingest_counters() -> None:
    child = WorkerStats()
    child.events_in["winlogbeat"] = 1200
    child.rejects["not_json"] = 2
    child.deadlettered, child.dropped, child.forwarded, child.outages = 2, 1180, 18, 1
    ingest = SimpleNamespace(assignment=["winlogbeat:0"], outage_s=4.5)

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


def test_the_childs_last_error_becomes_the_stages_error() -> None:
    handle = IngestProcess(WorkerSettings(), WorkerStats())
    handle._apply({"error": "KafkaException: fatal"})
    assert handle.error is not None and "KafkaException: fatal" in str(handle.error)
