"""The engine's key-value state interface, backed by a Faust table.

Every write and delete goes through the table, so it reaches the table's changelog
topic (deletes as tombstones) in the partition of the event being handled: that is
what lets a restored worker hold exactly the state the crashed one had.

`BatchState` sits in front of it while the agent handles a batch of one partition's
events: reads see the batch's own writes, and each key touched reaches the table (and
its changelog) once, with its last value, when the batch is flushed. The scope's meta
key, written by every event, then costs one changelog record per batch, not per event.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson


class TableState:
    """Values are stored as orjson bytes (the table's value type is bytes): the bytes
    Faust's json codec wrote before, serialised once for RocksDB and the changelog."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self._store = getattr(table, "data", table)

    def get(self, key: str) -> Any | None:
        # The table's store, not the table: Table.get reads RocksDB twice (contains, get).
        raw = self._store.get(key)
        return None if raw is None else orjson.loads(raw)

    def set(self, key: str, value: Any) -> None:
        self._table[key] = orjson.dumps(value)

    def delete(self, key: str) -> None:
        with contextlib.suppress(KeyError):
            del self._table[key]


_DELETED = object()


class BatchState:
    """A write-back cache over a TableState for the events of one batch and partition."""

    def __init__(self, backing: TableState) -> None:
        self._backing = backing
        self._dirty: dict[str, Any] = {}

    def get(self, key: str) -> Any | None:
        value = self._dirty.get(key)
        if value is None:
            return self._backing.get(key)
        return None if value is _DELETED else value

    def set(self, key: str, value: Any) -> None:
        self._dirty[key] = value

    def delete(self, key: str) -> None:
        self._dirty[key] = _DELETED

    def flush(self) -> int:
        """Write every touched key through to the table once; return how many."""
        for key, value in self._dirty.items():
            if value is _DELETED:
                self._backing.delete(key)
            else:
                self._backing.set(key, value)
        written = len(self._dirty)
        self._dirty.clear()
        return written
