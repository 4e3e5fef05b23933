"""The block scan with many rules finds all their fragments in one Aho-Corasick pass
(`AUTOMATON_FROM`): it must pick exactly the records the one-find-per-fragment scan
picks, on shipper-like records and on fragments placed at record edges, in any case."""

from __future__ import annotations

import random
from itertools import accumulate
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine import prefilter as prefilter_module
from app.engine.prefilter import AUTOMATON_FROM, Prefilter
from devtools.bench.ingest_decode import engine_for
from devtools.bench.rulesets import write_rules
from devtools.synth import generate


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Prefilter:
    folder: Path = tmp_path_factory.mktemp("rules")
    write_rules(folder, 40)
    union = engine_for([str(folder)]).prefilter
    assert isinstance(union, Prefilter) and len(union.fragments) >= AUTOMATON_FROM
    return union


def _scan(union: Prefilter, records: list[bytes], one_pass: bool) -> list[int]:
    block = b"\n".join(records)
    ends = list(accumulate(len(r) + 1 for r in records))
    saved = prefilter_module.AUTOMATON_FROM
    prefilter_module.AUTOMATON_FROM = saved if one_pass else 10**9
    try:
        return union.candidate_records(block, ends)
    finally:
        prefilter_module.AUTOMATON_FROM = saved


def test_shipper_records_pick_the_same_candidates(many: Prefilter) -> None:
    values = [r.value for r in generate(5_000, seed=7, msbuild_share=0.05).records]
    for first in range(0, len(values), 128):
        chunk = values[first : first + 128]
        assert _scan(many, chunk, True) == _scan(many, chunk, False)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 60),  # which fragment, past the end: none
            st.sampled_from(["lower", "upper", "title"]),
            st.sampled_from(["start", "middle", "end"]),
            st.text(alphabet='abcdefghijklmnopqrstuvwxyz.:\\ "', max_size=30),
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_fragments_anywhere_in_any_case_pick_the_same_candidates(
    many: Prefilter, specs: list[tuple[int, str, str, str]]
) -> None:
    records = []
    for which, case, where, filler in specs:
        fragment = many.fragments[which] if which < len(many.fragments) else ""
        fragment = getattr(fragment, case)()
        body = {"start": fragment + filler, "middle": filler + fragment + filler}.get(
            where, filler + fragment
        )
        records.append(("{" + body + "}").encode())
    random.Random(len(records)).shuffle(records)
    assert _scan(many, records, True) == _scan(many, records, False)
