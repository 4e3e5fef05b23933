"""The detect agent's write-back cache: a batch sees its own writes, the table each key once."""

from __future__ import annotations

from typing import Any

import orjson
from faust.serializers import codecs

from app.worker.state import BatchState, TableState


class CountingTable(dict[str, Any]):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes.append(f"set {key}")
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.writes.append(f"del {key}")
        super().__delitem__(key)


def test_reads_see_the_batch_and_the_table_gets_each_key_once() -> None:
    table = CountingTable()
    table["old"] = orjson.dumps({"v": 0})
    table.writes.clear()
    cache = BatchState(TableState(table))
    for i in range(5):
        cache.set("m", {"wm": i})
        assert cache.get("m") == {"wm": i}
    assert cache.get("old") == {"v": 0}
    cache.delete("old")
    assert cache.get("old") is None
    assert table["old"] == b'{"v":0}', "nothing reaches the table before the flush"
    assert cache.flush() == 2
    assert sorted(table.writes) == ["del old", "set m"]
    assert table == {"m": b'{"wm":4}'}


def test_a_key_deleted_then_set_again_is_written_with_its_last_value() -> None:
    table = CountingTable()
    cache = BatchState(TableState(table))
    cache.set("k", 1)
    cache.delete("k")
    cache.set("k", 2)
    cache.flush()
    assert table == {"k": b"2"} and table.writes == ["set k"]


def test_deleting_a_key_the_table_never_had_is_harmless() -> None:
    cache = BatchState(TableState(CountingTable()))
    cache.delete("ghost")
    assert cache.flush() == 1


def test_values_are_the_bytes_fausts_json_codec_wrote() -> None:
    """State written before the table stored orjson bytes itself reads the same."""
    value = {"s": [{"t": 1, "d": "ab", "f": {"process.name": "MSBuild.exe"}}], "ix": 7, "n": None}
    table: dict[str, Any] = {}
    TableState(table).set("k", value)
    assert table["k"] == codecs.dumps("json", value)
    assert TableState({"k": codecs.dumps("json", value)}).get("k") == value
