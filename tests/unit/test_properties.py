"""Property tests: arrival order within the lateness, duplicates, the prefilter, scanning."""

from __future__ import annotations

import random
import unicodedata
from typing import Any

import orjson
from engine_helpers import RULE_CURRENT, RULE_INSTALLUTIL, T0, iso, net, start
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.engine import Engine, Event, MemoryState, Source, load_rule
from app.engine.normalise import View, resolve
from app.engine.prefilter import ASCII_LOWERING, Prefilter
from app.engine.rule import parse_rule
from app.engine.ruleset import RuleSet
from app.engine.settings import EngineSettings

RULE = load_rule()
TTL, LATENESS = 60_000, 20_000
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _engine(**kwargs: Any) -> Engine:
    return Engine(RULE, ttl_ms=TTL, lateness_ms=LATENESS, alert_cap=0, **kwargs)


@st.composite
def scenarios(draw: st.DrawFn) -> list[tuple[int, dict[str, Any]]]:
    """Processes with one MSBuild start each and network events around it, plus noise."""
    docs: list[tuple[int, dict[str, Any]]] = []
    for p in range(draw(st.integers(1, 6))):
        guid = f"{{proc-{p}}}"
        t0 = T0 + draw(st.integers(0, 300_000))
        docs.append((t0, start(guid=guid, t=t0)))
        for n in range(draw(st.integers(0, 4))):
            dt = draw(st.integers(-30_000, 2 * TTL))
            ip = draw(st.sampled_from(["10.0.0.1", "127.0.0.1", "::1", None, "8.8.8.8"]))
            docs.append((t0 + dt, net(guid=guid, t=t0 + dt, ip=ip, destination_n=n)))
    for k in range(draw(st.integers(0, 5))):
        t = T0 + draw(st.integers(0, 300_000))
        docs.append((t, net(guid=f"{{noise-{k}}}", t=t, name="chrome.exe")))
    return docs


def _oracle(docs: list[tuple[int, dict[str, Any]]]) -> set[str]:
    """Starts that must alert: one start per process alerts iff a qualifying network event
    of that process lies in [start, start + TTL] (docs/semantics.md)."""
    eng = _engine()
    alerted = set()
    events = [eng.decode(orjson.dumps(d), Source("o", 0, 0)) for _, d in docs]
    starts = [e for e in events if isinstance(e, Event) and 0 in e.stages]
    nets = [e for e in events if isinstance(e, Event) and 1 in e.stages]
    for s in starts:
        if any(n.key == s.key and 0 <= n.timestamp_ms - s.timestamp_ms <= TTL for n in nets):
            alerted.add(s.key)
    return alerted


def _run(docs: list[dict[str, Any]], eng: Engine | None = None) -> list[dict[str, Any]]:
    eng = eng or _engine()
    state = MemoryState()
    alerts = []
    for i, doc in enumerate(docs):
        event = eng.decode(orjson.dumps(doc), Source("p", 0, i))
        if isinstance(event, Event):
            alerts.extend(eng.process(event, state))
    return alerts


def _shuffle_within_lateness(
    docs: list[tuple[int, dict[str, Any]]], seed: int
) -> list[dict[str, Any]]:
    """An arrival order in which no record is later than LATENESS behind the max seen."""
    rng = random.Random(seed)
    keyed = [(t + rng.randrange(LATENESS), i, d) for i, (t, d) in enumerate(docs)]
    return [d for _, _, d in sorted(keyed)]


@SETTINGS
@given(scenarios(), st.integers(0, 2**32))
def test_shuffle_within_lateness_gives_the_same_alerts(
    docs: list[tuple[int, dict[str, Any]]], seed: int
) -> None:
    in_order = [d for _, d in sorted(docs, key=lambda x: x[0])]
    expected = _oracle(docs)
    sorted_alerts = _run(in_order)
    shuffled_alerts = _run(_shuffle_within_lateness(docs, seed))
    assert {a["process"]["entity_id"] for a in sorted_alerts} == expected
    assert {a["process"]["entity_id"] for a in shuffled_alerts} == expected
    assert len(sorted_alerts) == len(shuffled_alerts) == len(expected)


@SETTINGS
@given(scenarios(), st.integers(0, 2**32), st.data())
def test_duplicates_never_add_alerts(
    docs: list[tuple[int, dict[str, Any]]], seed: int, data: st.DataObject
) -> None:
    order = _shuffle_within_lateness(docs, seed)
    copies = data.draw(st.lists(st.integers(0, len(order) - 1), max_size=len(order)))
    positions = list(range(len(order)))
    for index in copies:  # re-deliver a record shortly after the original, as shippers do
        after = positions.index(index) + 1 + data.draw(st.integers(0, 3))
        positions.insert(min(len(positions), after), index)
    with_dups = [order[i] for i in positions]
    eng = _engine()
    assert len(_run(with_dups, eng)) == len(_run(order))
    assert eng.stats.duplicates >= 0


@SETTINGS
@given(scenarios(), st.integers(0, 2**32), st.data())
def test_no_alert_twice_when_an_input_shows_up_late(
    docs: list[tuple[int, dict[str, Any]]], seed: int, data: st.DataObject
) -> None:
    """However late an input shows up, a start alerts once.

    Records arrive within the lateness on partition 0; the first ones are delivered again
    (a shipper's retried batch) on partition 1, first read at any later point (the
    partition the ingest reached last). The new input moves the watermark back; disorder
    this large may cost alerts (state expires), never add a second one for a start.
    """
    order = [orjson.dumps(d) for d in _shuffle_within_lateness(docs, seed)]
    last = data.draw(st.integers(0, len(order) - 1))
    at = data.draw(st.integers(last + 1, len(order)))
    arrivals = [(0, raw) for raw in order]
    arrivals[at:at] = [(1, raw) for raw in order[: last + 1]]
    eng = _engine()
    state = MemoryState()
    ids: list[str] = []
    for offset, (partition, raw) in enumerate(arrivals):
        event = eng.decode(raw, Source("topic", partition, offset))
        if isinstance(event, Event):
            ids.extend(a["alert"]["id"] for a in eng.process(event, state))
    assert len(ids) == len(set(ids))


# -- prefilter ------------------------------------------------------------------------------

RULES = [RULE, load_rule(RULE_CURRENT), load_rule(RULE_INSTALLUTIL)]
NAMES = ["MSBuild.exe", "msbuild.EXE", "InstallUtil.exe", "chrome.exe", "MSBUILD.exe"]


def _escape_some(raw: bytes, rng: random.Random) -> bytes:
    """Re-encode characters of JSON strings as \\uXXXX escapes (still the same JSON)."""
    text = raw.decode()
    out, in_string, escaped = [], False, False
    for char in text:
        if in_string and not escaped and char not in '"\\' and rng.random() < 0.3:
            out.append(f"\\u{ord(char):04x}" if ord(char) < 0x10000 else char)
            continue
        out.append(char)
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            in_string = not in_string
    return "".join(out).encode()


@st.composite
def shipper_records(draw: st.DrawFn) -> dict[str, Any]:
    """Records of every shape with names that may or may not match, in odd letter cases."""
    name = draw(st.sampled_from(NAMES))
    if draw(st.booleans()):
        name = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in name)
    if draw(st.booleans()):  # Kelvin sign / dotted I lower-case to ASCII
        name = name.replace("k", "\u212a").replace("i", "\u0130", 1)
    image = f"C:\\Windows\\Microsoft.NET\\{name}"
    guid = draw(st.sampled_from(["{g-1}", "{g-2}"]))
    eid = draw(st.sampled_from([1, 3, 22, "1", "3"]))
    shape = draw(st.sampled_from(["ecs", "dotted", "wlb8", "wlb6", "nxlog"]))
    t = iso(T0 + draw(st.integers(0, 10_000)))
    data = {
        "ProcessGuid": guid,
        "Image": image,
        "UtcTime": t.replace("T", " ").rstrip("Z"),
        "DestinationIp": draw(st.sampled_from(["10.0.0.1", "::1", "-"])),
        "Initiated": "true",
        "User": "CORP\\alice",
        "QueryName": "example.org",
    }
    if shape == "ecs":
        kind = "process" if eid in (1, "1") else "network"
        doc = start(guid=guid, t=T0, name=name) if kind == "process" else net(guid=guid, name=name)
        doc["process"]["executable"] = image
        return doc
    if shape == "dotted":
        return {
            "@timestamp": t,
            "event.category": ["network"],
            "event.action": "connection_attempted",
            "process.name": name,
            "process.entity_id": guid,
            "host.os.type": "windows",
            "network.direction": "egress",
        }
    if shape == "wlb8":
        return {
            "@timestamp": t,
            "winlog": {
                "event_id": str(eid),
                "provider_name": "Microsoft-Windows-Sysmon",
                "event_data": data,
            },
        }
    if shape == "wlb6":
        return {
            "@timestamp": t,
            "event_id": int(eid),
            "source_name": "Microsoft-Windows-Sysmon",
            "event_data": data,
        }
    return {"@timestamp": t, "EventID": int(eid), "SourceName": "Microsoft-Windows-Sysmon"} | data


@settings(max_examples=400, deadline=None)
@given(shipper_records(), st.integers(0, 2**32), st.sampled_from(range(len(RULES))))
def test_prefilter_never_drops_a_record_a_stage_matches(
    doc: dict[str, Any], seed: int, rule_index: int
) -> None:
    rule = RULES[rule_index]
    raw = orjson.dumps(doc)
    escaped = _escape_some(raw, random.Random(seed))
    assert orjson.loads(escaped) == doc
    view = View(doc)
    matches = any(stage.predicate(view) for stage in rule.compiled.stages)
    prefilter = Prefilter(rule.compiled)
    if matches:
        assert prefilter.may_match(raw)
        assert prefilter.may_match(escaped)
    with_filter = Engine(rule).decode(escaped, Source("t", 0, 0))
    without = Engine(rule, prefilter=False).decode(escaped, Source("t", 0, 0))
    assert type(with_filter) is type(without)
    if isinstance(without, Event):
        assert isinstance(with_filter, Event) and with_filter.stages == without.stages


def test_prefilter_and_predicate_agree_on_the_kelvin_sign() -> None:
    rule = parse_rule(
        '[rule]\nrule_id = "k"\nname = "k"\nquery = """sequence by process.entity_id'
        ' [process where process.name : "make.exe"] [network where process.name : "make.exe"]"""',
    )
    doc = {"event": {"category": "process"}, "process": {"name": "MA\u212aE.EXE"}}
    assert rule.compiled.stages[0].predicate(View(doc))
    assert Prefilter(rule.compiled).may_match(orjson.dumps(doc))


def test_ascii_lowering_lists_every_non_ascii_character_that_lowers_to_ascii() -> None:
    found = [
        chr(c)
        for c in range(0x80, 0x110000)
        if unicodedata.category(chr(c)) != "Cs" and any(ord(x) < 0x80 for x in chr(c).lower())
    ]
    assert tuple(found) == ASCII_LOWERING


def test_prefilter_sees_through_escapes() -> None:
    prefilter = Prefilter(RULE.compiled)
    assert prefilter.may_match(b'{"process":{"name":"MSBuild\\u002eexe"}}')
    assert prefilter.may_match(b'{"process":{"name":"\\u004dSBUILD.EXE"}}')
    # "MSBUİLD.EXE".lower() is "msbui\u0307ld.exe": neither the predicate nor the prefilter match
    assert not prefilter.may_match('{"process":{"name":"MSBUİLD.EXE"}}'.encode())
    assert not prefilter.may_match(b'{"process":{"name":"chrome.exe"},"x":"\\u00e9"}')
    assert not prefilter.may_match(b'{"process":{"name":"MSBuild\\\\u002eexe"}}')


# -- field resolution and block scanning -----------------------------------------------------

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["a", "B"]))
json_keys = st.sampled_from(["a", "b", "a.b", "b.a", "c"])
json_docs = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(json_keys, inner)),
    max_leaves=12,
).filter(lambda d: isinstance(d, dict))


@settings(max_examples=300, deadline=None)
@given(json_docs, st.sampled_from(["a", "b", "a.b", "b.a", "a.b.a", "a.a", "c.a.b"]))
def test_flattened_lookup_equals_path_resolution(doc: dict[str, Any], path: str) -> None:
    assert sorted(map(repr, View(doc).values(path))) == sorted(map(repr, resolve(doc, path)))


lines = st.one_of(
    st.builds(lambda d: orjson.dumps(d), st.sampled_from([start(), net(), net(ip="::1")])),
    st.builds(lambda d: orjson.dumps(d), st.sampled_from([net(name="a.exe"), {"x": 1}])),
    st.sampled_from([b"", b"   ", b"not json", b"[1]", b"{", b'{"a":}', b"\xff\xfe{}", b"{}"]),
    st.sampled_from([b' {"process":{"name":"MSBuild.exe"}}\r', b'{"a":"\\u004dsbuild.exe"}']),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(lines, max_size=12), st.booleans())
def test_scan_block_equals_line_by_line_decode(block_lines: list[bytes], trailing: bool) -> None:
    assume(block_lines)
    block = b"\n".join(block_lines) + (b"\n" if trailing else b"")
    one, bulk = Engine(RULE), Engine(RULE)
    expected = []
    for number, line in enumerate(block_lines, start=1):
        if line.strip():
            result = one.decode(line, Source("f", 0, number))
            if result is not None:
                expected.append(result)
    newlines, results = bulk.scan_block(block, "f", 1)
    assert newlines == block.count(b"\n")
    assert results == expected
    assert bulk.stats.as_dict() == one.stats.as_dict()


clean_records = st.one_of(
    st.builds(lambda d: orjson.dumps(d), st.sampled_from([start(), net(), net(ip="::1")])),
    st.builds(lambda d: orjson.dumps(d), st.sampled_from([net(name="a.exe"), {"x": 1}])),
    st.sampled_from([b"{}", b'{"a":}', b'{"a":"\\u004dsbuild.exe"}', b'{"a":"x\nMSBuild.exe"}']),
    st.sampled_from(['{"a":"\u0130"}'.encode(), '{"a":"\u212a"}'.encode()]),
)
batches = st.one_of(
    st.lists(clean_records, min_size=1, max_size=12),
    st.lists(st.one_of(lines, clean_records, st.none()), max_size=12),
)


@settings(max_examples=400, deadline=None)
@given(batches, st.integers(1, 5))
def test_scan_records_keeps_every_record_decode_keeps(
    batch: list[bytes | None], chunk_size: int
) -> None:
    """The ingest stage's batch prefilter drops only what decode() drops, and counts alike."""
    one, bulk = Engine(RULE), Engine(RULE)
    kept = [
        i
        for i, raw in enumerate(batch)
        if raw is None or one.decode(raw, Source("t", 0, i)) is not None
    ]
    indices = bulk.scan_records(batch, chunk_size)
    if indices is None:  # not clean: the caller decodes each record
        assert not batch or not all(_clean(raw, bulk.max_event_bytes) for raw in batch)
        return
    assert batch and all(_clean(raw, bulk.max_event_bytes) for raw in batch)
    assert set(kept) <= set(indices)
    for i in indices:
        bulk.decode(batch[i], Source("t", 0, i))  # type: ignore[arg-type]
    assert bulk.stats.as_dict() == one.stats.as_dict()


@settings(max_examples=200, deadline=None)
@given(st.lists(clean_records, min_size=1, max_size=12), st.integers(1, 5))
def test_scan_records_of_several_rules_keeps_what_they_keep(
    batch: list[bytes], chunk_size: int
) -> None:
    """With several rules the batch scan uses the union of their prefilters."""
    rules = [RULE, load_rule(RULE_INSTALLUTIL)]
    one, bulk = RuleSet(rules, EngineSettings()), RuleSet(rules, EngineSettings())
    kept = {i: one.decode(raw, Source("t", 0, i)) for i, raw in enumerate(batch)}
    indices = bulk.scan_records(batch, chunk_size)
    assert indices is not None
    assert {i for i, result in kept.items() if result is not None} <= set(indices)
    assert [bulk.decode(batch[i], Source("t", 0, i)) for i in indices] == [kept[i] for i in indices]


def _clean(raw: bytes | None, max_bytes: int) -> bool:
    if raw is None or not raw.startswith(b"{") or not raw.endswith(b"}") or len(raw) > max_bytes:
        return False
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
