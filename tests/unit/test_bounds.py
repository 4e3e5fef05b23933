"""Every value the engine writes has a size known in advance, whatever the input."""

from __future__ import annotations

from typing import Any

import orjson
from engine_helpers import T0, engine, feed, iso, net, start
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.engine import Event, MemoryState, Source
from app.engine.limits import DEFAULT_LIMITS, Limits

LIMITS = DEFAULT_LIMITS
CLOCK_MS = 1_800_000_000_000  # engine_helpers' clock


class SizedState(MemoryState):
    """Records the largest value written under each key prefix (k, m, x)."""

    def __init__(self, limits: Limits = LIMITS) -> None:
        super().__init__()
        self.largest: dict[str, int] = {}
        self.limits = limits

    def set(self, key: str, value: Any) -> None:
        size = len(orjson.dumps(value))
        kind = key.split("|", 1)[0]
        self.largest[kind] = max(self.largest.get(kind, 0), size)
        if kind == "k":  # the shape the byte bound is derived from
            assert len(value["s"]) <= self.limits.pending_starts
            assert len(value["n"]) <= self.limits.held_events
            assert len(value["seen"]) <= self.limits.seen_markers
            for entry in value["s"] + value["n"]:
                assert len(orjson.dumps(entry)) <= self.limits.entry_bytes()
        if kind == "m":
            assert len(value["src"]) <= self.limits.sources
            assert len(value["x"]) <= self.limits.expiry_buckets, len(value["x"])
            assert len(value["c"]) <= self.limits.cap_buckets
        super().set(key, value)

    def key_bytes(self, scope: str, key: str) -> int:
        raw = self._data.get(f"k|{scope}|{key}")
        return 0 if raw is None else len(raw)


def _assert_within_bounds(state: SizedState, limits: Limits = LIMITS) -> None:
    assert state.largest.get("k", 0) <= limits.key_state_bytes(), state.largest
    assert state.largest.get("m", 0) <= limits.meta_bytes(), state.largest
    assert state.largest.get("x", 0) <= limits.index_page_bytes + 1_024, state.largest


G = "{5e0f0000-0000-0000-0000-00000000c0de}"


def test_a_process_making_10000_connections_alerts_once_in_a_small_value() -> None:
    eng = engine(alert_cap=0)
    state = SizedState()
    docs: list[dict[str, Any]] = [start(guid=G, t=T0)]
    docs += [
        net(guid=G, t=T0 + 10 + i * 20, destination={"ip": f"10.0.{i // 250}.{i % 250}"})
        for i in range(10_000)
    ]
    alerts = feed(eng, docs, state)
    assert len(alerts) == 1
    assert alerts[0]["events"][1]["timestamp_ms"] == T0 + 10
    assert eng.stats.collapsed == 9_999, "every later connection is collapsed, none held"
    assert state.key_bytes("0", G) < 1_500, "the key keeps only its duplicate markers"
    _assert_within_bounds(state)


def test_connections_read_before_their_start_are_held_up_to_the_bound() -> None:
    """Elastic Defend's network topic read ahead of its process topic."""
    eng = engine(alert_cap=0, lateness_ms=3_600_000)
    state = SizedState()
    nets = [net(guid=G, t=T0 + 10 + i * 20, ip=f"10.1.{i // 250}.{i % 250}") for i in range(3_000)]
    assert feed(eng, nets, state) == []
    assert eng.stats.trimmed["held_event"] == 3_000 - LIMITS.held_events
    (alert,) = feed(eng, [start(guid=G, t=T0)], state)
    assert alert["events"][1]["timestamp_ms"] == T0 + 10, "the earliest connection after it"
    assert alert["destination"]["ip"] == "10.1.0.0"
    _assert_within_bounds(state)


def test_a_storm_of_starts_on_one_key_keeps_the_latest() -> None:
    eng = engine(alert_cap=0)
    state = SizedState()
    starts = [start(guid=G, t=T0 + i, user={"name": f"u{i}"}) for i in range(1_000)]
    feed(eng, starts, state)
    assert eng.stats.trimmed["pending_start"] == 1_000 - LIMITS.pending_starts
    (alert,) = feed(eng, [net(guid=G, t=T0 + 5_000)], state)
    assert alert["events"][0]["timestamp_ms"] == T0 + 999, "the latest start pairs"
    _assert_within_bounds(state)


def test_a_join_key_longer_than_elastic_indexes_is_skipped_and_counted() -> None:
    eng = engine()
    long_key = "{" + "a" * LIMITS.key_chars + "}"
    assert feed(eng, [start(guid=long_key), net(guid=long_key)]) == []
    assert eng.stats.key_too_long == 2
    ok = "{" + "a" * (LIMITS.key_chars - 2) + "}"
    assert len(feed(eng, [start(guid=ok), net(guid=ok)])) == 1


def test_large_records_alert_with_a_reference_and_trimmed_fields() -> None:
    eng = engine()
    command = "msbuild.exe " + "x" * 200_000
    s = start(t=T0, pad="p" * 100_000)
    s["process"]["command_line"] = command
    n = net(t=T0 + 5, host={"name": ["h"] * 5_000, "id": "host-1"})
    (alert,) = feed(eng, [s, n])
    first, second = alert["events"]
    assert first["original"] is None
    assert first["original_omitted_bytes"] == len(orjson.dumps(s))
    assert first["fields"]["process.command_line"] == command[: LIMITS.field_chars]
    assert first["fields_trimmed"] == ["process.command_line"]
    assert second["original"] is None or len(orjson.dumps(second["original"])) <= 8_192
    assert "host.name" in second["fields_trimmed"]
    assert len(second["fields"]["host.name"]) == LIMITS.field_values
    rule_bytes = len(orjson.dumps(alert["rule"]))
    assert len(eng.alert_bytes(alert)) <= LIMITS.alert_bytes(rule_bytes)
    assert eng.stats.trimmed["original"] >= 1 and eng.stats.trimmed["fields"] == 2


def test_many_large_fields_are_dropped_largest_first_to_the_budget() -> None:
    eng = engine()
    doc = start(t=T0)
    doc["process"]["command_line"] = "c" * 5_000
    doc["process"]["executable"] = "e" * 5_000
    doc["user"]["name"] = "n" * 5_000
    doc["host"]["hostname"] = "h" * 5_000
    event = eng.decode(orjson.dumps(doc), Source("t", 0, 0))
    assert isinstance(event, Event)
    non_key = {p: v for p, v in event.fields.items() if p != "process.entity_id"}
    assert len(orjson.dumps(non_key)) <= LIMITS.fields_bytes
    assert event.fields["process.entity_id"] == doc["process"]["entity_id"]
    assert set(event.trimmed) >= {"process.command_line", "process.executable"}


def test_an_event_stamped_far_ahead_of_the_clock_is_rejected() -> None:
    eng = engine()
    ahead = start(t=CLOCK_MS + LIMITS.max_future_ms + 1_000)
    result = eng.decode(orjson.dumps(ahead), Source("t", 0, 0))
    assert result is not None and not isinstance(result, Event)
    assert result.reason == "future_timestamp"
    near = start(t=CLOCK_MS + 60_000)
    assert isinstance(eng.decode(orjson.dumps(near), Source("t", 0, 1)), Event)


def test_an_endpoint_clock_running_ahead_cannot_expire_other_processes() -> None:
    """One input, live: a host 50 minutes ahead must not move the watermark 50 minutes."""
    now = T0 + 3_600_000
    eng = engine(ttl_ms=60_000, lateness_ms=10_000)
    eng.clock = lambda: now / 1000
    eng._matcher.clock = eng.clock
    state = MemoryState()
    feed(eng, [start(guid=G, t=now - 5_000)], state)
    feed(eng, [start(guid="{skewed}", t=now + 50 * 60_000)], state)
    assert len(feed(eng, [net(guid=G, t=now - 4_000)], state)) == 1


def test_inputs_that_fell_behind_are_forgotten() -> None:
    eng = engine(ttl_ms=60_000, lateness_ms=10_000, source_skew_ms=600_000)
    state = SizedState()
    for partition in range(50):
        raw = orjson.dumps(start(guid=f"{{p{partition}}}", t=T0))
        event = eng.decode(raw, Source("old", partition, 0))
        assert isinstance(event, Event)
        eng.process(event, state)
    feed(eng, [start(guid="{new}", t=T0 + 3_600_000)], state)
    meta = state.get("m|0")
    assert list(meta["src"]) == ["test#0"]


def test_a_flood_of_new_keys_pages_the_index_and_expires_every_key() -> None:
    small = Limits(index_page_bytes=1_024)  # 40,000 keys would fill 3 KiB per shard
    eng = engine(ttl_ms=60_000, lateness_ms=1_000, alert_cap=0, limits=small)
    state = SizedState(small)
    n = 40_000
    feed(eng, [start(guid=f"{{flood-{i:06d}}}", t=T0 + i // 100) for i in range(n)], state)
    pages = [k for k in state if k.startswith("x|") and k.count("|") == 4]
    assert pages, "the flood overflowed an index page"
    _assert_within_bounds(state, small)
    feed(eng, [start(guid="{after}", t=T0 + 3 * 3_600_000)], state)
    assert eng.stats.expired == n
    assert not [k for k in state if k.startswith("k|") and "flood" in k]


# -- whatever arrives, nothing grows past the bounds ----------------------------------------

KEYS = ["{a}", "{b}", "x" * 1_000]
big_text = st.sampled_from(["", "x" * 2_000, "\u00e9" * 1_100, "\x00" * 900])


@st.composite
def hostile_docs(draw: st.DrawFn) -> tuple[str, int, dict[str, Any]]:
    guid = draw(st.sampled_from(KEYS))
    t = T0 + draw(st.integers(0, 90_000)) * draw(st.sampled_from([1, 1, 1, 1, 100]))
    kind = draw(st.sampled_from(["start", "start", "net", "net", "both"]))
    doc = start(guid=guid, t=t) if kind == "start" else net(guid=guid, t=t, ip="10.0.0.1")
    if kind == "both":
        doc["event"]["category"] = ["process", "network"]
    doc["process"]["command_line"] = draw(big_text)
    doc["user"]["name"] = draw(big_text)
    doc["pad"] = draw(st.sampled_from(["", "p" * 9_000]))
    if draw(st.booleans()):
        doc["host"]["name"] = [draw(big_text)] * draw(st.integers(1, 40))
    topic = draw(st.sampled_from(["t1", "t2"]))
    return topic, draw(st.integers(0, 3)), doc


@st.composite
def bursts(draw: st.DrawFn) -> list[tuple[str, int, dict[str, Any]]]:
    """A record and up to 40 variants of it (a chatty process, a storm of starts)."""
    topic, partition, doc = draw(hostile_docs())
    out = [(topic, partition, doc)]
    step = draw(st.sampled_from([-50, 1, 700]))
    for i in range(draw(st.integers(0, 40))):
        copy = orjson.loads(orjson.dumps(doc))
        copy["@timestamp"] = iso(T0 + 45_000 + (i + 1) * step)
        copy["seq"] = i
        out.append((topic, partition, copy))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(bursts(), min_size=1, max_size=12), st.booleans())
def test_no_state_value_grows_past_its_bound(
    groups: list[list[tuple[str, int, dict[str, Any]]]], duplicate: bool
) -> None:
    eng = engine(alert_cap=3, ttl_ms=60_000, lateness_ms=5_000, source_skew_ms=300_000)
    state = SizedState()
    records = [(topic, p, orjson.dumps(doc)) for group in groups for topic, p, doc in group]
    if duplicate:
        records += records[::2]
    for offset, (topic, partition, raw) in enumerate(records):
        event = eng.decode(raw, Source(topic, partition, offset))
        if isinstance(event, Event):
            assert len(event.to_bytes()) <= LIMITS.entry_bytes() + 64
            for alert in eng.process(event, state):
                assert len(eng.alert_bytes(alert)) <= LIMITS.alert_bytes(
                    len(orjson.dumps(alert["rule"]))
                )
    _assert_within_bounds(state)
