"""How a person reads an alert: one line, or a table of many."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def field(doc: dict[str, Any], path: str) -> Any:
    """A field by dotted path, whether the document nests it or spells it with dots."""
    if path in doc:
        return doc[path]
    head, _, rest = path.partition(".")
    node = doc.get(head)
    if rest and isinstance(node, dict):
        return field(node, rest)
    return None


def _destination(alert: dict[str, Any]) -> str:
    ip = field(alert, "destination.ip")
    port = field(alert, "destination.port")
    if ip is None:
        dns = field(alert, "dns.question.name")
        return f"dns {dns}" if dns else "-"
    return f"{ip}:{port}" if port is not None else str(ip)


def one_line(alert: dict[str, Any]) -> str:
    return (
        f"{field(alert, 'kibana.alert.original_time') or field(alert, '@timestamp')}  "
        f"{field(alert, 'rule.name')} "
        f"[{field(alert, 'rule.severity')}/{field(alert, 'rule.risk_score')}]  "
        f"host={field(alert, 'host.name') or '?'}  "
        f"process={field(alert, 'process.executable') or field(alert, 'process.name')}  "
        f"entity={field(alert, 'process.entity_id')}  dest={_destination(alert)}  "
        f"id={str(field(alert, 'alert.id'))[:16]}"
    )


def table(alerts: Iterable[dict[str, Any]], title: str) -> Any:
    from rich.table import Table

    out = Table(title=title, show_lines=False)
    for column in ("time (event)", "host", "process", "entity id", "destination", "alert id"):
        out.add_column(column, overflow="fold")
    for alert in alerts:
        out.add_row(
            str(field(alert, "kibana.alert.original_time") or field(alert, "@timestamp")),
            str(field(alert, "host.name") or "?"),
            str(field(alert, "process.executable") or field(alert, "process.name")),
            str(field(alert, "process.entity_id")),
            _destination(alert),
            str(field(alert, "alert.id"))[:16],
        )
    return out
