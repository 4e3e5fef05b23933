"""The decode path never raises, whatever bytes a shipper (or an attacker) sends."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine import Engine, Event, MemoryState, Reject, Source, load_rule

ENGINE = Engine(load_rule(None), max_event_bytes=1_048_576)
SOURCE = Source("winlogbeat", 0, 0)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


def _dumps(value: object) -> bytes:
    """The stdlib writes what shippers may send and orjson refuses (huge ints, deep nesting)."""
    return json.dumps(value).encode()


def _decode_and_process(raw: bytes) -> None:
    result = ENGINE.decode(raw, SOURCE)
    assert result is None or isinstance(result, Event | Reject)
    if isinstance(result, Event):
        ENGINE.process(Event.from_bytes(result.to_bytes()), MemoryState())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_raise(raw: bytes) -> None:
    _decode_and_process(raw)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_never_raises(value: object) -> None:
    _decode_and_process(_dumps(value))


@settings(max_examples=200, deadline=None)
@given(
    name=json_values,
    entity=json_values,
    ip=json_values,
    timestamp=json_values,
    category=json_values,
)
def test_wrong_types_in_the_fields_the_rule_reads_never_raise(
    name: object, entity: object, ip: object, timestamp: object, category: object
) -> None:
    doc = {
        "@timestamp": timestamp,
        "event": {"category": category, "type": ["start"]},
        "process": {"name": name, "entity_id": entity},
        "destination": {"ip": ip},
    }
    _decode_and_process(_dumps(doc))
    _decode_and_process(_dumps({**doc, "process": {"name": "MSBuild.exe", "entity_id": entity}}))


def test_hostile_shapes_are_rejected_or_processed() -> None:
    deep = (
        b'{"event": {"category": "process"}, "x": '
        + b'{"a": [' * 5_000
        + b'"MSBuild.exe"'
        + b"]}" * 5_000
        + b"}"
    )
    cases = [
        b'{"pad": "' + b"x" * 1_100_000 + b'"}',  # over the size limit
        deep,  # nested 5,000 levels
        b'{"process": {"name": "MSBuild.exe\xff"}}',  # invalid UTF-8
        _dumps({"process": {"name": ["MSBuild.exe"] * 100_000}}),  # enormous array
        _dumps({"process": {"name": "MSBuild.exe", "entity_id": None}}),  # null key
        _dumps(
            {
                "process": {"name": "MSBuild.exe", "entity_id": ""},
                "event": {"category": "process", "type": "start"},
                "@timestamp": "2026-11-28T09:00:00Z",
            }
        ),  # empty key
        _dumps(
            {
                "@timestamp": 1.5e300,
                "process": {"name": "MSBuild.exe", "entity_id": "x"},
                "event": {"category": "process", "type": "start"},
            }
        ),  # absurd time
    ]
    for raw in cases:
        _decode_and_process(raw)
    assert ENGINE.decode(cases[0], SOURCE) == Reject(
        "too_large", ENGINE.decode(cases[0], SOURCE).detail
    )
    assert isinstance(ENGINE.decode(cases[2], SOURCE), Reject)
