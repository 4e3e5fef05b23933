"""Shared helpers for the engine tests: sample data location and document builders."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from app.engine import Engine, Event, MemoryState, Source, StateStore, load_rule
from app.engine.event import events_of
from app.engine.ruleset import RuleSet
from app.engine.timestamps import format_timestamp_ms

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "app" / "rules"
RULE_710 = RULES / "msbuild_making_network_connections.toml"
RULE_CURRENT = RULES / "msbuild_making_network_connections_current.toml"
RULE_INSTALLUTIL = RULES / "installutil_process_making_network_connections.toml"
MSBUILD = "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\MSBuild.exe"
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def shared_data() -> Path:
    """The recordings the tests use, kept in the repository with their licences."""
    return REPO / "tests" / "data"


def archive_lines(path: Path) -> list[bytes]:
    """The NDJSON lines of the single file inside a .zip or .tar.gz sample."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            return archive.read(archive.namelist()[0]).splitlines()
    with tarfile.open(path) as archive:
        member = next(m for m in archive.getmembers() if m.isfile())
        handle = archive.extractfile(member)
        assert handle is not None
        return io.BytesIO(handle.read()).read().splitlines()


def iso(ms: int) -> str:
    return format_timestamp_ms(ms)


def start(
    guid: str = "{11111111-0000-0000-0000-000000000001}",
    t: int = T0,
    name: str = "MSBuild.exe",
    **extra: Any,
) -> dict[str, Any]:
    """An Elastic Endpoint style process start (ECS, nested)."""
    doc: dict[str, Any] = {
        "@timestamp": iso(t),
        "event": {"category": ["process"], "type": ["start"], "action": "start", "kind": "event"},
        "host": {"name": "WIN10", "id": "host-1", "os": {"type": "windows"}},
        "user": {"id": "S-1-5-21-1-1001", "name": "alice"},
        "process": {
            "entity_id": guid,
            "name": name,
            "executable": MSBUILD.replace("MSBuild.exe", name),
            "pid": 4242,
            "pe": {"original_file_name": "MSBuild.exe"},
        },
    }
    doc.update(extra)
    return doc


def net(
    guid: str = "{11111111-0000-0000-0000-000000000001}",
    t: int = T0 + 1_000,
    ip: str | None = "93.184.216.34",
    name: str = "MSBuild.exe",
    action: str = "connection_attempted",
    **extra: Any,
) -> dict[str, Any]:
    """An Elastic Endpoint style network event (ECS, nested)."""
    doc: dict[str, Any] = {
        "@timestamp": iso(t),
        "event": {
            "category": ["network"],
            "type": ["start"],
            "action": action,
            "kind": "event",
        },
        "host": {"name": "WIN10", "id": "host-1", "os": {"type": "windows"}},
        "user": {"id": "S-1-5-21-1-1001", "name": "alice"},
        "process": {"entity_id": guid, "name": name, "pid": 4242},
        "network": {"direction": "egress"},
    }
    if ip is not None:
        doc["destination"] = {"ip": ip, "port": 443}
    doc.update(extra)
    return doc


def engine(rule: Path | None = None, **kwargs: Any) -> Engine:
    return Engine(load_rule(rule), clock=lambda: 1_800_000_000.0, **kwargs)


def feed(
    eng: Engine | RuleSet,
    docs: Iterable[dict[str, Any] | bytes],
    state: StateStore | None = None,
    scope: str = "0",
) -> list[dict[str, Any]]:
    """decode() + process() every document in order; all alerts."""
    store = state if state is not None else MemoryState()
    alerts: list[dict[str, Any]] = []
    for offset, doc in enumerate(docs):
        raw = doc if isinstance(doc, bytes) else orjson.dumps(doc)
        result = eng.decode(raw, Source("test", 0, offset))
        if isinstance(result, Event | tuple):
            for event in events_of(result):
                alerts.extend(eng.process(event, store, scope))
    return alerts


def alerts_for(docs: Iterable[dict[str, Any] | bytes], rule: Path | None = None, **kw: Any) -> int:
    return len(feed(engine(rule, **kw), docs))
