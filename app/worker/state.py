"""The engine's key-value state interface, backed by a Faust table.

Every write and delete goes through the table, so it reaches the table's changelog
topic (deletes as tombstones) in the partition of the event being handled: that is
what lets a restored worker hold exactly the state the crashed one had.
"""

from __future__ import annotations

import contextlib
from typing import Any


class TableState:
    def __init__(self, table: Any) -> None:
        self._table = table

    def get(self, key: str) -> Any | None:
        return self._table.get(key)

    def set(self, key: str, value: Any) -> None:
        self._table[key] = value

    def delete(self, key: str) -> None:
        with contextlib.suppress(KeyError):
            del self._table[key]
