"""Public renderers: one record of a process, in its host's shape."""

from __future__ import annotations

from typing import Any

from devtools.synth.common import TOPIC_NETWORK, TOPIC_PROCESS
from devtools.synth.defend import _ep_base, _ep_net_process, _ep_start, _ep_user
from devtools.synth.hosts import Proc
from devtools.synth.sysmon import (
    _ed_dns,
    _ed_file,
    _ed_image,
    _ed_network,
    _ed_reg,
    _ed_start,
    _source_ip,
    _sysmon_common,
    _sysmon_record,
)

# --------------------------------------------------------------------------- public renderers


def _start(
    p: Proc, us: int, ship_us: int, tick: int, budget: int | None
) -> tuple[str, dict[str, Any], int]:
    h = p.host
    cmd = p.command_line
    if h.shape == "endpoint":
        ev, added = _ep_start(p, us, cmd, tick, budget)
        return TOPIC_PROCESS, ev, added
    ed, added = _ed_start(p, us, cmd, budget)
    topic, ev = _sysmon_record(h, 1, ed, us, ship_us)
    return topic, ev, added


def render_process_start(
    p: Proc, us: int, *, ship_us: int | None = None, tick: int = 0
) -> tuple[str, dict[str, Any]]:
    """A process-start record (Sysmon 1 / Defend start) of p at event time us (µs)."""
    topic, ev, _ = _start(p, us, us + 800_000 if ship_us is None else ship_us, tick, None)
    return topic, ev


def render_process_end(
    p: Proc, us: int, *, ship_us: int | None = None
) -> tuple[str, dict[str, Any]]:
    """A process-end record (Sysmon 5 / Defend end): category process but not a start."""
    h = p.host
    ship_us = us + 800_000 if ship_us is None else ship_us
    if h.shape != "endpoint":
        return _sysmon_record(h, 5, _sysmon_common(p, us), us, ship_us)
    ev = _ep_base(h, "endpoint.events.process", us, 0)
    ev["event"].update(action="end", category=["process"], type=["end"])
    ev["message"] = "Endpoint process event"
    ev["process"] = {
        "entity_id": p.entity_id,
        "executable": p.executable,
        "name": p.name,
        "pid": p.pid,
        "exit_code": 0,
    }
    ev["user"] = _ep_user(p)
    return TOPIC_PROCESS, ev


def render_network(
    p: Proc,
    us: int,
    dst: str,
    dport: int,
    *,
    sport: int = 50_000,
    dname: str = "",
    pname: str = "",
    ship_us: int | None = None,
    tick: int = 0,
    action: str = "connection_attempted",
) -> tuple[str, dict[str, Any]]:
    """An outbound connection (Sysmon 3 / Defend connection_attempted) of p to dst:dport."""
    h = p.host
    ship_us = us + 1_200_000 if ship_us is None else ship_us
    if h.shape != "endpoint":
        ed = _ed_network(p, us, dst, dport, sport, dname, pname)
        return _sysmon_record(h, 3, ed, us, ship_us)
    src = _source_ip(h, dst)
    ev = _ep_base(h, "endpoint.events.network", us, tick)
    ev["event"].update(
        action=action,
        category=["network"],
        type=["end"] if action.startswith("disconnect") else ["start"],
    )
    ev["destination"] = {"address": dst, "ip": dst, "port": dport}
    ev["source"] = {"address": src, "ip": src, "port": sport}
    ev["network"] = {
        "direction": "egress",
        "transport": "tcp",
        "type": "ipv6" if ":" in dst else "ipv4",
    }
    ev["message"] = "Endpoint network event"
    ev["process"] = _ep_net_process(p)
    ev["user"] = _ep_user(p)
    return TOPIC_NETWORK, ev


def render_dns(
    p: Proc,
    us: int,
    qname: str,
    answers: tuple[str, ...] = (),
    *,
    ship_us: int | None = None,
    tick: int = 0,
) -> tuple[str, dict[str, Any]]:
    """A DNS query of p (Sysmon 22 / Defend lookup_requested): network, no destination.ip."""
    h = p.host
    ship_us = us + 1_200_000 if ship_us is None else ship_us
    if h.shape != "endpoint":
        results = "".join(f"::ffff:{a};" if ":" not in a else f"{a};" for a in answers)
        return _sysmon_record(h, 22, _ed_dns(p, us, qname, results), us, ship_us)
    ev = _ep_base(h, "endpoint.events.network", us, tick)
    ev["event"].update(action="lookup_requested", category=["network"], type=["protocol", "info"])
    ev["dns"] = {"Ext": {"options": "0x40000000000"}, "question": {"name": qname, "type": "A"}}
    ev["network"] = {"protocol": "dns"}
    ev["message"] = "Endpoint DNS event"
    ev["process"] = _ep_net_process(p)
    ev["user"] = _ep_user(p)
    return TOPIC_NETWORK, ev


def render_file(
    p: Proc, us: int, path: str, *, ship_us: int | None = None
) -> tuple[str, dict[str, Any]]:
    """Sysmon 11 file creation (Sysmon shapes only)."""
    ship_us = us + 900_000 if ship_us is None else ship_us
    return _sysmon_record(p.host, 11, _ed_file(p, us, path), us, ship_us)


def render_image_load(p: Proc, us: int, dll: str) -> tuple[str, dict[str, Any]]:
    """Sysmon 7 image load (Sysmon shapes only)."""
    return _sysmon_record(p.host, 7, _ed_image(p, us, dll), us, us + 900_000)


def render_registry(p: Proc, us: int, key: str, details: str) -> tuple[str, dict[str, Any]]:
    """Sysmon 13 registry value set (Sysmon shapes only)."""
    return _sysmon_record(p.host, 13, _ed_reg(p, us, key, details), us, us + 900_000)
