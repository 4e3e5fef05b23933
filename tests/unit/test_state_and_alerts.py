"""State bounded by TTL, expiry per scope through delete(), watermarks, the alert document."""

from __future__ import annotations

from typing import Any

import orjson
from engine_helpers import T0, engine, feed, net, start

from app.engine import Engine, Event, MemoryState, Source, load_rule
from app.engine.alert import alert_id


class RecordingState(MemoryState):
    def __init__(self) -> None:
        super().__init__()
        self.deleted: list[str] = []

    def delete(self, key: str) -> None:
        self.deleted.append(key)
        super().delete(key)


def test_state_stays_flat_on_a_long_stream_with_short_ttl() -> None:
    eng = engine(ttl_ms=10_000, lateness_ms=2_000, source_skew_ms=60_000)
    state = MemoryState()
    sizes = []
    for i in range(3_000):
        guid = f"{{p-{i}}}"
        t = T0 + i * 1_000
        docs: list[dict[str, Any]] = [start(guid=guid, t=t)]
        if i % 3 == 0:
            docs.append(net(guid=guid, t=t + 500))
        if i % 5 == 0:
            docs.append(net(guid=f"{{orphan-{i}}}", t=t))
        feed(eng, docs, state)
        if i % 500 == 499:
            sizes.append(len(state))
    assert max(sizes) - min(sizes) <= 5, sizes
    # ~15 live keys of the 12 s window, their seen-markers' keys, the ~20 starts that
    # alerted in the last 60 s (remembered for the source skew), and the index shards of
    # the live expiry buckets: a constant, whatever the length of the stream.
    assert max(sizes) < 150
    assert eng.stats.expired > 2_000


def test_expiry_deletes_through_the_interface_and_only_its_scope() -> None:
    eng = engine(ttl_ms=10_000, lateness_ms=1_000)
    state = RecordingState()
    feed(eng, [start(guid="{a}", t=T0)], state, scope="1")
    feed(eng, [start(guid="{b}", t=T0)], state, scope="2")
    feed(eng, [start(guid="{c}", t=T0 + 60_000)], state, scope="2")
    assert "k|2|{b}" in state.deleted
    assert all(key.split("|")[1] == "2" for key in state.deleted)
    assert "k|1|{a}" in state  # scope 1's watermark has not moved


def test_pair_beyond_ttl_never_alerts_even_before_the_sweep() -> None:
    eng = engine(ttl_ms=10_000, lateness_ms=600_000)  # huge lateness: nothing swept
    assert feed(eng, [start(t=T0), net(t=T0 + 10_001)]) == []


def test_an_input_far_ahead_does_not_expire_another_inputs_state() -> None:
    eng = Engine(load_rule(), ttl_ms=60_000, lateness_ms=10_000)
    state = MemoryState()

    def send(doc: dict[str, Any], topic: str) -> list[dict[str, Any]]:
        event = eng.decode(orjson.dumps(doc), Source(topic, 0, 0))
        assert isinstance(event, Event)
        return eng.process(event, state)

    send(start(t=T0), "process-topic")
    send(net(guid="{other}", t=T0 + 1_800_000), "network-topic")  # 30 min ahead
    assert len(send(net(t=T0 + 5_000), "process-topic")) == 1
    eng.end_source(state, "process-topic", 0)
    send(start(guid="{late}", t=T0), "another")


def test_alert_document() -> None:
    eng = engine()
    s, n = start(t=T0), net(t=T0 + 2_000)
    (alert,) = feed(eng, [s, n])
    digests = [e["digest"] for e in alert["events"]]
    assert alert["alert"]["id"] == alert_id("0e79980b-4250-4a50-a509-69294c14e84b", digests[:1])
    assert alert["kibana.alert.uuid"] == alert["alert"]["id"]
    assert alert["event"]["kind"] == "alert"
    assert alert["@timestamp"] == "2027-01-15T08:00:00.000Z"
    assert alert["rule"]["name"] == "MsBuild Making Network Connections"
    assert alert["rule"]["version"] == 5
    assert alert["rule"]["threat"][0]["tactic"]["name"] == "Execution"
    assert alert["rule"]["query"].startswith("sequence by process.entity_id")
    assert alert["process"]["entity_id"] == s["process"]["entity_id"]
    assert alert["process"]["name"] == "MSBuild.exe"
    assert alert["host"]["name"] == "WIN10"
    assert alert["destination"] == {"ip": "93.184.216.34", "port": 443}
    assert [e["stage"] for e in alert["events"]] == [1, 2]
    assert alert["events"][0]["original"] == s
    assert alert["events"][1]["topic"] == "test"
    assert alert["events"][1]["offset"] == 1
    assert alert["kibana.alert.original_time"] == s["@timestamp"]
    assert alert["kibana.alert.severity"] == "medium"
    assert alert["kibana.alert.risk_score"] == 47
    assert orjson.loads(eng.alert_bytes(alert)) == alert
    assert eng.alert_key(alert) == s["process"]["entity_id"].encode()


def test_alert_id_depends_on_content_not_coordinates() -> None:
    s, n = orjson.dumps(start()), orjson.dumps(net())
    ids = []
    for topic, base in (("file.ndjson", 1), ("winlogbeat", 1_000_000)):
        eng = Engine(load_rule())
        state = MemoryState()
        alerts = []
        for offset, raw in enumerate([s, n]):
            event = eng.decode(raw + b"\n", Source(topic, 3, base + offset))
            assert isinstance(event, Event)
            alerts += eng.process(event, state)
        ids.append(alerts[0]["alert"]["id"])
    assert ids[0] == ids[1]


def test_alert_id_does_not_depend_on_which_network_event_completes_the_start() -> None:
    """Across partitions a later connection can arrive first; the alert must keep its id."""
    s = start(t=T0)
    first, second = net(t=T0 + 1_000), net(t=T0 + 2_000, ip="198.51.100.9")
    (in_order,) = feed(engine(), [s, first, second])
    (reversed_,) = feed(engine(), [s, second, first])
    assert in_order["alert"]["id"] == reversed_["alert"]["id"]
    (network_first,) = feed(engine(), [second, first, s])
    assert network_first["alert"]["id"] == in_order["alert"]["id"]


def test_a_flood_of_starts_writes_small_values_per_event() -> None:
    """Each start rewrites its own key and one index shard, not an index of every key."""
    eng = engine(ttl_ms=540_000, lateness_ms=60_000)
    state = SizeRecordingState()
    for i in range(20_000):
        feed(eng, [start(guid=f"{{flood-{i}}}", t=T0 + i)], state)  # one bucket, one scope
        if i == 999:
            state.written = 0
    per_event = state.written / 19_000
    assert per_event < 4_000, f"{per_event:.0f} bytes written per start"
    assert len(state) > 20_000, "every start is pending"


class SizeRecordingState(MemoryState):
    """Counts the bytes of every value written (the changelog traffic of the worker)."""

    written = 0

    def set(self, key: str, value: Any) -> None:
        self.written += len(orjson.dumps(value))
        super().set(key, value)
