"""The shapes shippers send, seen through ECS field names (docs/semantics.md, Inputs).

ECS documents (Winlogbeat 7.x, Elastic Agent / Defend) are read as they are, with nested
objects and dotted keys both resolving a field, as Elasticsearch does. Raw Sysmon records
(Winlogbeat 8.x `winlog.event_data`, Winlogbeat 6.x top-level `event_data`, NXLog flat
fields) are mapped the way Elastic's Sysmon ingest pipeline maps them, because in those
pipelines the ECS mapping happens in Elasticsearch, which seqwatch replaces.

The mapping never rewrites a value except where `DERIVED_FIELDS` says so: the prefilter
relies on every other mapped value being a substring of the raw record.
"""

from __future__ import annotations

import re
from typing import Any

from app.engine.timestamps import parse_timestamp_ms

SYSMON_PROVIDER = "microsoft-windows-sysmon"
SYSMON_CHANNEL = "microsoft-windows-sysmon/operational"

# Fields whose mapped value may not appear verbatim in the raw record (constants, or values
# computed from an event id or a flag). The prefilter derives nothing from them.
DERIVED_FIELDS: frozenset[str] = frozenset(
    {
        "event.category",
        "event.type",
        "event.kind",
        "event.code",
        "event.module",
        "event.provider",
        "host.os.type",
        "host.os.family",
        "network.direction",
    }
)

# Sysmon event id -> (event.category, event.type), as Elastic's Sysmon pipeline sets them.
_CATEGORIES: dict[int, tuple[list[str], list[str]]] = {
    1: (["process"], ["start"]),
    3: (["network"], ["connection", "start", "protocol"]),
    5: (["process"], ["end"]),
    22: (["network"], ["connection", "protocol", "info"]),
}

# Sysmon EventData name -> ECS field, copied verbatim.
_COPY: tuple[tuple[str, str], ...] = (
    ("ProcessGuid", "process.entity_id"),
    ("Image", "process.executable"),
    ("CommandLine", "process.command_line"),
    ("CurrentDirectory", "process.working_directory"),
    ("OriginalFileName", "process.pe.original_file_name"),
    ("Product", "process.pe.product"),
    ("Company", "process.pe.company"),
    ("Description", "process.pe.description"),
    ("FileVersion", "process.pe.file_version"),
    ("ParentProcessGuid", "process.parent.entity_id"),
    ("ParentImage", "process.parent.executable"),
    ("ParentCommandLine", "process.parent.command_line"),
    ("SourceIp", "source.ip"),
    ("SourceHostname", "source.domain"),
    ("DestinationIp", "destination.ip"),
    ("DestinationHostname", "destination.domain"),
    ("Protocol", "network.transport"),
    ("QueryName", "dns.question.name"),
)
# Sysmon EventData name -> ECS field holding an integer.
_INTEGERS: tuple[tuple[str, str], ...] = (
    ("ProcessId", "process.pid"),
    ("ParentProcessId", "process.parent.pid"),
    ("SourcePort", "source.port"),
    ("DestinationPort", "destination.port"),
)
_DIGITS = re.compile(r"[0-9]{1,18}\Z")
# Sysmon and NXLog write "-" or "" for an empty value; the pipeline drops those fields.
_EMPTY = ("", "-")


def _basename(path: str) -> str:
    """The file name of a Windows or POSIX path, like the pipeline's `process.name`."""
    return path[max(path.rfind("\\"), path.rfind("/")) + 1 :]


def _as_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _DIGITS.match(value):
        return int(value)
    return None


def _has_category(doc: dict[str, Any]) -> bool:
    event = doc.get("event")
    if isinstance(event, dict) and event.get("category") is not None:
        return True
    return doc.get("event.category") is not None


def _is_sysmon(provider: Any, channel: Any, data: dict[str, Any]) -> bool:
    """Sysmon by provider or channel; with neither present, by Sysmon's ProcessGuid field."""
    if isinstance(provider, str) and provider.lower() == SYSMON_PROVIDER:
        return True
    if isinstance(channel, str) and channel.lower() == SYSMON_CHANNEL:
        return True
    return provider is None and channel is None and "ProcessGuid" in data


def _map_sysmon(
    event_id: int,
    data: dict[str, Any],
    computer: Any,
    user_id: Any,
    doc: dict[str, Any],
) -> dict[str, Any]:
    """Sysmon EventData -> ECS dotted fields, the way Elastic's ingest pipeline maps them."""
    mapped: dict[str, Any] = {
        "event.kind": "event",
        "event.code": str(event_id),
        "event.module": "sysmon",
        "event.provider": "Microsoft-Windows-Sysmon",
    }
    categories = _CATEGORIES.get(event_id)
    if categories is not None:
        mapped["event.category"], mapped["event.type"] = categories
    for source, target in _COPY:
        value = data.get(source)
        if value is not None and value not in _EMPTY:
            mapped[target] = value
    for source, target in _INTEGERS:
        number = _as_int(data.get(source))
        if number is not None:
            mapped[target] = number
    image = mapped.get("process.executable")
    if isinstance(image, str):
        mapped["process.name"] = _basename(image)
    parent = mapped.get("process.parent.executable")
    if isinstance(parent, str):
        mapped["process.parent.name"] = _basename(parent)
    user = data.get("User")
    if isinstance(user, str) and user not in _EMPTY:
        domain, sep, name = user.partition("\\")
        if sep:
            mapped["user.domain"], mapped["user.name"] = domain, name
        else:
            mapped["user.name"] = user
    if user_id is not None:
        mapped["user.id"] = user_id
    initiated = data.get("Initiated")
    if initiated in ("true", True):
        mapped["network.direction"] = "egress"
    elif initiated in ("false", False):
        mapped["network.direction"] = "ingress"
    if isinstance(computer, str) and computer:
        # The endpoint, not the collector (Winlogbeat 6 and NXLog put the WEC in host.name),
        # as Elastic's pipeline does for forwarded events.
        mapped["host.name"] = computer
    if _resolve(doc, ("host", "os", "type")) == []:
        # Only Windows writes the Windows event log; Winlogbeat/Agent set this field themselves.
        mapped["host.os.type"] = "windows"
        mapped["host.os.family"] = "windows"
    return mapped


class View:
    """One parsed record as the rule sees it: ECS fields over the original document.

    `mapped` holds the ECS fields computed for raw Sysmon shapes (empty for ECS input); they
    take precedence over the document, so Winlogbeat 6's collector `host.name` gives way to
    the endpoint name.
    """

    __slots__ = ("_flat", "doc", "event_time_field", "mapped", "shape")

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self._flat: dict[str, list[Any]] | None = None
        self.mapped: dict[str, Any] = {}
        self.shape = "ecs"
        self.event_time_field: Any = None
        winlog = doc.get("winlog")
        if isinstance(winlog, dict) and isinstance(winlog.get("event_data"), dict):
            if not _has_category(doc):
                data = winlog["event_data"]
                user = winlog.get("user")
                self._raw(
                    "winlogbeat8",
                    winlog.get("event_id"),
                    winlog.get("provider_name"),
                    winlog.get("channel"),
                    data,
                    winlog.get("computer_name"),
                    user.get("identifier") if isinstance(user, dict) else None,
                )
        elif "event_id" in doc and isinstance(doc.get("event_data"), dict):
            user = doc.get("user")
            self._raw(
                "winlogbeat6",
                doc.get("event_id"),
                doc.get("source_name"),
                doc.get("log_name"),
                doc["event_data"],
                doc.get("computer_name"),
                user.get("identifier") if isinstance(user, dict) else None,
            )
        elif "EventID" in doc and not _has_category(doc):
            self._raw(
                "nxlog",
                doc.get("EventID"),
                doc.get("SourceName", doc.get("ProviderName")),
                doc.get("Channel"),
                doc,
                doc.get("Hostname"),
                doc.get("UserID"),
            )

    def _raw(
        self,
        shape: str,
        event_id: Any,
        provider: Any,
        channel: Any,
        data: dict[str, Any],
        computer: Any,
        user_id: Any,
    ) -> None:
        number = _as_int(event_id)
        if number is None or not _is_sysmon(provider, channel, data):
            return
        self.shape = shape
        self.mapped = _map_sysmon(number, data, computer, user_id, self.doc)
        self.event_time_field = data.get("UtcTime")

    def values(self, path: str, parts: tuple[str, ...] = ()) -> list[Any]:
        """All non-null leaf values of the field; arrays flattened (any-element semantics).

        The document is flattened once, on first use, into dotted paths: nested objects,
        dotted keys and any mix of them land on the same path, their values merged, which
        is what `resolve()` computes per field, at a fraction of the cost for many fields.
        """
        mapped = self.mapped
        if path in mapped:
            out: list[Any] = []
            _leaf(mapped[path], out)
            return out
        flat = self._flat
        if flat is None:
            flat = self._flat = {}
            _flatten(self.doc, "", flat)
        return flat.get(path, _NOTHING)

    def timestamp_ms(self) -> int | None:
        """Event time: Sysmon's UtcTime for raw shapes, else (or failing that) @timestamp."""
        if self.event_time_field is not None:
            ms = parse_timestamp_ms(self.event_time_field)
            if ms is not None:
                return ms
        return parse_timestamp_ms(self.doc.get("@timestamp"))


_NOTHING: list[Any] = []


def _flatten(obj: dict[str, Any], prefix: str, out: dict[str, list[Any]]) -> None:
    for key, value in obj.items():
        path = prefix + key
        if type(value) is dict:
            _flatten(value, path + ".", out)
        elif type(value) is list:
            _flatten_list(value, path, out)
        elif value is not None:
            found = out.get(path)
            if found is None:
                out[path] = [value]
            else:
                found.append(value)


def _flatten_list(items: list[Any], path: str, out: dict[str, list[Any]]) -> None:
    for item in items:
        if type(item) is dict:
            _flatten(item, path + ".", out)
        elif type(item) is list:
            _flatten_list(item, path, out)
        elif item is not None:
            found = out.get(path)
            if found is None:
                out[path] = [item]
            else:
                found.append(item)


def _leaf(value: Any, out: list[Any]) -> None:
    if value is None or isinstance(value, dict):
        return
    if isinstance(value, list):
        for item in value:
            _leaf(item, out)
    else:
        out.append(value)


def _collect(obj: Any, parts: tuple[str, ...], i: int, out: list[Any]) -> None:
    if isinstance(obj, list):
        for item in obj:
            _collect(item, parts, i, out)
        return
    if not isinstance(obj, dict):
        return
    n = len(parts)
    key = parts[i]
    j = i + 1
    while True:
        if key in obj:
            if j == n:
                _leaf(obj[key], out)
            else:
                _collect(obj[key], parts, j, out)
        if j == n:
            return
        key = key + "." + parts[j]
        j += 1


def _resolve(doc: dict[str, Any], parts: tuple[str, ...]) -> list[Any]:
    """Values of a dotted path through nested objects, dotted keys, or any mix of the two."""
    out: list[Any] = []
    _collect(doc, parts, 0, out)
    return out


def resolve(doc: dict[str, Any], path: str) -> list[Any]:
    """Public form of the field resolution, for tests and the alert builder."""
    return _resolve(doc, tuple(path.split(".")))
