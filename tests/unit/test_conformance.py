"""Elasticsearch's EQL spec suite through the engine (`seqwatch detect`'s code path).

Every query of the suite's files runs; its answer must be Elasticsearch's expected event
ids, compared as Elasticsearch's own runner compares them (tests/conformance/spec.py).
A query that cannot give that answer here is listed in DIFFERENT with the reason, and the
test asserts that it still differs, so the list cannot go stale.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from tests.conformance.spec import SUITES, SpecQuery, load_docs, load_suite, run_query

DIFFERENT: dict[tuple[str, str], str] = {}

CASES = [query for suite in SUITES for query in load_suite(suite)]


@functools.cache
def _docs(data: str) -> tuple[dict[str, Any], ...]:
    return tuple(load_docs(data))


def _expected(spec: SpecQuery, ids: list[int], keys: list[str]) -> bool:
    expected = spec.expected
    # A list of lists: any one of them.
    ok = ids in expected if expected and isinstance(expected[0], list) else ids == expected
    if spec.join_keys is not None:
        ok = ok and keys == [str(k) for k in spec.join_keys]
    return ok


def test_the_suite_is_all_there() -> None:
    counts = {suite.name: len(load_suite(suite)) for suite in SUITES}
    assert counts == {
        "test_queries": 133,
        "additional_test_queries": 61,
        "test_queries_date": 4,
        "test_queries_date_nanos": 3,
        "test_extra": 40,
        "test_missing_events": 26,
    }


@pytest.mark.parametrize("spec", CASES, ids=lambda q: f"{q.suite.name}::{q.name}")
def test_spec_query_gives_elasticsearchs_answer(spec: SpecQuery) -> None:
    docs = [dict(d) for d in _docs(spec.suite.data)]
    ids, keys = run_query(spec, docs)
    reason = DIFFERENT.get((spec.suite.name, spec.name))
    if reason is not None:
        assert not _expected(spec, ids, keys), f"now gives Elasticsearch's answer: {reason}"
        return
    assert _expected(spec, ids, keys), f"got {ids} keys {keys}, expected {spec.expected}"
