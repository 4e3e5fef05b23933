"""seqwatch's detection engine: pure Python, no Faust, no Kafka clients, no I/O.

`load_rule` reads a rule file, `Engine.decode` turns record bytes into events, and
`Engine.process` runs the sequence semantics of docs/semantics.md against a StateStore.
"""

from app.engine.core import Engine
from app.engine.event import Event, Reject, Source
from app.engine.rule import Rule, RuleError, load_rule
from app.engine.sequence import Stats
from app.engine.settings import EngineSettings
from app.engine.state import MemoryState, StateStore

__all__ = [
    "Engine",
    "EngineSettings",
    "Event",
    "MemoryState",
    "Reject",
    "Rule",
    "RuleError",
    "Source",
    "StateStore",
    "Stats",
    "load_rule",
]
