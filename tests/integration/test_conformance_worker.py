"""Elasticsearch's EQL spec suite through the worker: every query without a pipe, as a rule.

One worker per data set runs all of that set's queries as rules (`--rules`), the data is
replayed into its input topic, and each rule's alerts must be Elasticsearch's expected
event ids, compared as the spec runner compares them (tests/conformance/spec.py). Event
queries alert from the ingest stage, sequences from the state stage; the data is years
old, so the TTL is long and the partitions release what they hold once idle (`--idle`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from app.cli.detect import apply_pipes
from app.engine.compile import compile_query
from app.kafka.settings import KafkaSettings
from tests.conformance.spec import SUITES, engine_alerts, load_docs, load_suite
from tests.integration.harness import TopicReader, WorkerProcess, produce
from tests.unit.test_conformance import DIFFERENT

DATA_SETS = sorted({suite.data for suite in SUITES})


def _queries(data: str) -> list[Any]:
    out = []
    for suite in SUITES:
        if suite.data != data:
            continue
        for spec in load_suite(suite):
            if compile_query(spec.query).pipes or (suite.name, spec.name) in DIFFERENT:
                continue  # pipes run in detect only; DIFFERENT as in test_conformance
            out.append(spec)
    return out


def _rule_file(folder: Path, number: int, spec: Any) -> None:
    text = (
        "[rule]\n"
        f'rule_id = "{spec.suite.name}:{spec.name}"\n'
        f'name = "{spec.name}"\n'
        'type = "eql"\nlanguage = "eql"\n'
        f"query = {orjson.dumps(spec.query).decode()}\n"
    )
    (folder / f"q{number:03}.toml").write_text(text)


@pytest.mark.parametrize("data", DATA_SETS)
def test_spec_queries_without_pipes_give_elasticsearchs_answer_in_the_worker(
    kafka: KafkaSettings, tmp_path: Path, unique: str, data: str
) -> None:
    queries = _queries(data)
    folder = tmp_path / "rules"
    folder.mkdir()
    for number, spec in enumerate(queries):
        _rule_file(folder, number, spec)
    tiebreaker = queries[0].suite.tiebreaker
    topic, alerts_topic = f"in-{unique}", f"alerts-{unique}"
    worker = WorkerProcess(
        kafka,
        tmp_path / "state",
        tmp_path / "worker.log",
        "--input-topics",
        topic,
        "--alerts-topic",
        alerts_topic,
        "--deadletter-topic",
        f"dead-{unique}",
        "--group-id",
        f"group-{unique}",
        "--partitions",
        "2",
        "--rules",
        str(folder),
        "--ttl",
        "36500d",
        "--lateness",
        "1d",
        "--idle",
        "2s",
        "--alert-cap",
        "0",
        "--tiebreaker",
        tiebreaker,
        "--mapping",
        str(queries[0].suite.mapping),
    ).start()
    try:
        worker.wait_ready()
        docs = load_docs(data)
        produce(kafka, topic, [orjson.dumps(doc) for doc in docs])
        # The worker must give every alert the offline engine gives (no pipe, no size):
        # sequences are released once the partitions have been idle (`--idle`).
        total = sum(len(engine_alerts(spec, [dict(d) for d in docs])) for spec in queries)
        reader = TopicReader(kafka, alerts_topic)
        reader.wait_for(lambda recs: len(recs) >= total, timeout=120, alive=worker.check_alive)
        reader.poll(3.0)  # anything extra would show a disagreement
        assert len(reader.records) == total
        by_rule: dict[str, list[dict[str, Any]]] = {}
        for alert in reader.values():
            by_rule.setdefault(alert["rule"]["rule_id"], []).append(alert)
        wrong = []
        for spec in queries:
            alerts = apply_pipes(
                by_rule.get(f"{spec.suite.name}:{spec.name}", []), (("head", spec.size),)
            )
            ids = [
                -1 if e.get("missing") else e["original"][tiebreaker]
                for a in alerts
                for e in a["events"]
            ]
            expected = spec.expected
            ok = ids in expected if expected and isinstance(expected[0], list) else ids == expected
            if spec.join_keys is not None:
                keys = [
                    "null" if k is None else str(k)
                    for a in alerts
                    for k in a["seqwatch"].get("join_keys", [])
                ]
                ok = ok and keys == [str(k) for k in spec.join_keys]
            if not ok:
                wrong.append(f"{spec.suite.name}::{spec.name}: got {ids}, expected {expected}")
        assert wrong == [], f"{len(wrong)} of {len(queries)} differ:\n" + "\n".join(wrong)
    finally:
        worker.stop()
