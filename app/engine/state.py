"""The key-value interface the matcher keeps its state behind.

The worker backs it with a Faust table (RocksDB + changelog), tests and `seqwatch detect`
with a dict. Values are JSON-compatible so any serializer can hold them, and every deletion
goes through `delete()` so that it reaches the changelog.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import orjson


@runtime_checkable
class StateStore(Protocol):
    """get/set/delete over string keys and JSON-compatible values."""

    def get(self, key: str) -> Any | None: ...

    def set(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...


class MemoryState:
    """A dict-backed StateStore.

    With `serialize=True` (the default) values are stored as orjson bytes, so a test fails
    when the engine stores something a Faust table could not hold, or mutates a value after
    storing it; `seqwatch detect` turns it off for speed.
    """

    def __init__(self, *, serialize: bool = True) -> None:
        self._data: dict[str, Any] = {}
        self._serialize = serialize
        self.sets = 0
        self.deletes = 0

    def get(self, key: str) -> Any | None:
        value = self._data.get(key)
        if value is None or not self._serialize:
            return value
        return orjson.loads(value)

    def set(self, key: str, value: Any) -> None:
        self.sets += 1
        self._data[key] = orjson.dumps(value) if self._serialize else value

    def delete(self, key: str) -> None:
        self.deletes += 1
        self._data.pop(key, None)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def keys(self) -> Iterator[str]:
        return iter(list(self._data))

    def __iter__(self) -> Iterator[str]:
        return self.keys()

    def checkpoint(self) -> dict[str, Any]:
        """The contents now, to go back to with `rollback` (serialized values are bytes:
        nothing later can change them)."""
        if not self._serialize:
            raise ValueError("checkpoint() needs a serializing MemoryState")
        return dict(self._data)

    def rollback(self, checkpoint: dict[str, Any]) -> None:
        self._data = dict(checkpoint)
