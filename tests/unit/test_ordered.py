"""The ordered matcher: any arrival order within the lateness gives Elasticsearch's answer.

Elasticsearch's answer itself is checked by the spec suite (test_conformance.py); here the
stream's side of it: disorder, late events, bounds, keys, the alert's shape.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from engine_helpers import T0, iso
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.cli.detect import run
from app.engine import Engine, Event, MemoryState, Source
from app.engine.event import events_of
from app.engine.limits import Limits
from app.engine.rule import parse_rule
from app.engine.timestamps import parse_timestamp_ms

LATENESS = 20_000
THREE = """sequence by host.id with maxspan=1m
  [process where event.type == "start"]
  [file where true]
  [network where not cidrmatch(destination.ip, "127.0.0.1")]"""
RULE_TEXT = '[rule]\nrule_id = "r"\nname = "n"\nquery = """{}"""\n'
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _rule(query: str = THREE) -> Any:
    return parse_rule(RULE_TEXT.format(query))


def _engine(query: str = THREE, **kwargs: Any) -> Engine:
    options: dict[str, Any] = {"lateness_ms": LATENESS, "alert_cap": 0, "clock": lambda: 2e9}
    options.update(kwargs)
    return Engine(_rule(query), **options)


def _doc(host: str, t: int, category: str, n: int, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@timestamp": iso(t),
        "event": {"category": [category], "type": ["start"], "sequence": n},
        "host": {"id": host},
        "destination": {"ip": extra.pop("ip", "10.1.2.3")},
        "n": n,
    }
    doc.update(extra)
    return doc


def _ids(alerts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        tuple(-1 if e.get("missing") else e["original"]["n"] for e in a["events"]) for a in alerts
    )


def _stream(eng: Engine, docs: list[dict[str, Any]], state: MemoryState) -> list[dict]:
    alerts: list[dict[str, Any]] = []
    for offset, doc in enumerate(docs):
        decoded = eng.decode(orjson.dumps(doc), Source("in", 0, offset))
        if not isinstance(decoded, Event | tuple):
            continue
        for event in events_of(decoded):
            alerts.extend(eng.process(event, state))
    return alerts


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    docs = []
    for n in range(draw(st.integers(1, 14))):
        host = draw(st.sampled_from(["a", "b", "c"]))
        t = T0 + draw(st.integers(0, 120)) * 1_000
        category = draw(st.sampled_from(["process", "file", "network", "registry"]))
        ip = draw(st.sampled_from(["10.1.2.3", "127.0.0.1"]))
        docs.append(_doc(host, t, category, n, ip=ip))
    return docs


@SETTINGS
@given(histories(), st.randoms(use_true_random=False))
def test_any_arrival_order_within_the_lateness_gives_the_sorted_answer(
    docs: list[dict[str, Any]], rnd: random.Random
) -> None:
    ordered = sorted(docs, key=lambda d: (d["@timestamp"], d["n"]))
    block = b"\n".join(orjson.dumps(d) for d in ordered) + b"\n"
    expected = _ids(list(run(_engine(), [(0, "sorted", block)])))
    # Arrival: each event displaced by less than the lateness in event time.
    jitter = {d["n"]: rnd.uniform(0, LATENESS - 1_000) for d in docs}
    arrival = sorted(docs, key=lambda d: _ms(d) + jitter[d["n"]])
    eng = _engine()
    state = MemoryState()
    got = _stream(eng, arrival, state) + eng.finish(state)
    assert _ids(got) == expected
    assert eng.stats.late == 0


def _ms(doc: dict[str, Any]) -> int:
    value = parse_timestamp_ms(doc["@timestamp"])
    assert value is not None
    return value


def test_alerts_wait_for_the_watermark_then_carry_every_stage() -> None:
    eng = _engine()
    state = MemoryState()
    docs = [
        _doc("a", T0, "process", 1),
        _doc("a", T0 + 1_000, "file", 2),
        _doc("a", T0 + 2_000, "network", 3),
    ]
    assert _stream(eng, docs, state) == []  # held: the lateness has not passed
    later = _stream(eng, [_doc("z", T0 + 2_000 + LATENESS, "process", 4)], state)
    assert _ids(later) == [(1, 2, 3)]
    alert = later[0]
    assert [e["stage"] for e in alert["events"]] == [1, 2, 3]
    assert alert["host"]["id"] == "a" and alert["seqwatch"]["join_keys"] == ["a"]


def test_an_event_later_than_the_lateness_is_matched_and_counted() -> None:
    eng = _engine()
    state = MemoryState()
    _stream(eng, [_doc("a", T0, "process", 1), _doc("z", T0 + 90_000, "process", 9)], state)
    late = [_doc("a", T0 + 1_000, "file", 2), _doc("a", T0 + 2_000, "network", 3)]
    assert _ids(_stream(eng, late, state)) == [(1, 2, 3)]
    assert eng.stats.late == 2


def test_missing_stage_alerts_show_the_gap_and_wait_for_maxspan() -> None:
    query = """sequence by host.id with maxspan=10s
      [process where true] ![file where true]"""
    eng = _engine(query)
    state = MemoryState()
    assert _stream(eng, [_doc("a", T0, "process", 1), _doc("b", T0, "process", 2)], state) == []
    _stream(eng, [_doc("b", T0 + 5_000, "file", 3)], state)  # b's gap is filled
    done = _stream(eng, [_doc("z", T0 + 11_000 + LATENESS, "process", 4)], state)
    assert _ids(done) == [(1, -1)]
    assert done[0]["events"][1] == {"stage": 2, "missing": True}


def test_multi_valued_and_optional_keys_join_as_elasticsearch_joins_them() -> None:
    query = "sequence by ?user.name [process where true] [network where true]"
    eng = _engine(query)
    docs = [
        _doc("h", T0, "process", 1, user={"name": ["alice", "bob"]}),
        _doc("h", T0 + 1, "network", 2, user={"name": "bob"}),
        _doc("h", T0 + 2, "process", 3),  # no user.name: null, joins the next null
        _doc("h", T0 + 3, "network", 4),
    ]
    state = MemoryState()
    alerts = _stream(eng, docs, state) + eng.finish(state)
    assert _ids(alerts) == [(1, 2), (3, 4)]
    assert sorted(str(a["seqwatch"]["join_keys"]) for a in alerts) == ["['bob']", "[None]"]


def test_a_busy_key_stays_within_its_bound() -> None:
    limits = Limits(buffered_events=8)
    eng = _engine(limits=limits)
    state = MemoryState()
    docs = [_doc("a", T0 + i, "file", i) for i in range(200)]
    _stream(eng, docs, state)
    bound = limits.ordered_key_state_bytes(3)
    largest = max(len(orjson.dumps(state.get(k))) for k in state)
    assert largest <= bound
    assert eng.stats.trimmed["buffer"] == 200 - 8


def test_state_of_another_layout_version_is_refused() -> None:
    eng = _engine()
    state = MemoryState()
    state.set("k|0|a", {"v": 99, "q": [], "p": [None, None], "m": {}, "w": [], "seen": {}})
    decoded = eng.decode(orjson.dumps(_doc("a", T0, "process", 1)), Source("in", 0, 0))
    with pytest.raises(ValueError, match="layout 99"):
        eng.process(events_of(decoded)[0], state)


def test_a_quiet_partition_releases_its_alerts_on_the_ingest_ticks() -> None:
    wall = [T0 / 1000]
    eng = _engine(clock=lambda: wall[0])
    state = MemoryState()
    docs = [
        _doc("a", T0, "process", 1),
        _doc("a", T0 + 1_000, "file", 2),
        _doc("a", T0 + 2_000, "network", 3),
    ]
    assert _stream(eng, docs, state) == []
    wall[0] += LATENESS / 1000 - 1  # quiet for less than the lateness: still held
    assert eng.tick(state, "0", int(wall[0] * 1000)) == []
    wall[0] += 3
    assert _ids(eng.tick(state, "0", int(wall[0] * 1000))) == [(1, 2, 3)]
    assert eng.tick(state, "0", int(wall[0] * 1000) + 5_000) == []  # once


def test_a_watermark_jump_past_the_ttl_releases_then_expires() -> None:
    eng = _engine(ttl_ms=60_000)
    state = MemoryState()
    docs = [
        _doc("a", T0, "process", 1),
        _doc("a", T0 + 1_000, "file", 2),
        _doc("a", T0 + 2_000, "network", 3),
        _doc("z", T0 + 86_400_000, "process", 4),  # a day later: everything before expires
    ]
    assert _ids(_stream(eng, docs, state)) == [(1, 2, 3)]
    assert not [k for k in state if k.startswith("k|0|a")]


class _Sized(MemoryState):
    def __init__(self) -> None:
        super().__init__()
        self.largest: dict[str, int] = {}

    def set(self, key: str, value: Any) -> None:
        kind = key.split("|", 1)[0]
        self.largest[kind] = max(self.largest.get(kind, 0), len(orjson.dumps(value)))
        super().set(key, value)


HOSTILE = """sequence by user.name with maxspan=1m
  [process where true] by host.id
  [file where true] by host.id
  ![registry where true] by host.id
  [network where true] by host.id"""


@st.composite
def hostile_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Multi-valued keys, huge values, bursts on one key, events far apart in time."""
    docs = []
    for n in range(draw(st.integers(1, 60))):
        names = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "x" * 900]), max_size=6))
        hosts = draw(st.lists(st.sampled_from(["h1", "h2", "h3"]), min_size=1, max_size=5))
        t = T0 + draw(st.sampled_from([0, 1, 2, 500, 30_000, 90_000, 3_600_000]))
        category = draw(st.sampled_from(["process", "file", "registry", "network"]))
        doc = _doc(hosts[0], t + n, category, n, user={"name": names or None})
        doc["host"]["id"] = hosts
        doc["pad"] = "p" * draw(st.sampled_from([0, 10, 20_000]))
        docs.append(doc)
    return docs


@SETTINGS
@given(hostile_streams())
def test_hostile_streams_keep_every_value_within_its_bound(docs: list[dict[str, Any]]) -> None:
    eng = _engine(HOSTILE, ttl_ms=120_000, limits=Limits(buffered_events=6))
    state = _Sized()
    _stream(eng, docs, state)
    eng.finish(state)  # type: ignore[arg-type]
    assert state.largest.get("k", 0) <= eng.max_state_bytes
    assert state.largest.get("m", 0) <= eng.limits.meta_bytes()
    assert max(state.largest.get("x", 0), state.largest.get("r", 0)) <= (
        eng.limits.index_page_bytes + 1_024
    )
