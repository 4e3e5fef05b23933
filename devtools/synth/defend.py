"""Elastic Defend documents (logs-endpoint.events.*)."""

from __future__ import annotations

import base64
from typing import Any

from devtools.synth.common import iso_7
from devtools.synth.hosts import Host, Proc
from devtools.synth.sysmon import _host_meta

# --------------------------------------------------------------------------- Elastic Defend


def _ep_base(h: Host, dataset: str, us: int, tick: int) -> dict[str, Any]:
    c = h.cache.get("ep")
    if c is None:
        c = h.cache["ep"] = {
            "agent": {"id": h.agent_id, "type": "endpoint", "version": "8.13.4"},
            "ecs": {"version": "8.10.0"},
            "elastic": {"agent": {"id": h.agent_id}},
            "ds": {},
        }
    ds = c["ds"].get(dataset)
    if ds is None:
        ds = c["ds"][dataset] = {"dataset": dataset, "namespace": "default", "type": "logs"}
    h.ev_seq += 1
    ts = iso_7(us, tick)
    event: dict[str, Any] = {
        "created": ts,
        "dataset": dataset,
        "kind": "event",
        "module": "endpoint",
    }
    ev: dict[str, Any] = {
        "@timestamp": ts,
        "data_stream": ds,
        "event": event,
        "host": _host_meta(h),
    }
    if not h.lean:
        ev["agent"] = c["agent"]
        ev["ecs"] = c["ecs"]
        ev["elastic"] = c["elastic"]
        event["id"] = base64.b64encode(
            h.ev_seq.to_bytes(8, "big") + h.agent_id[:4].encode()
        ).decode()
        event["sequence"] = h.ev_seq
    return ev


def _ep_ancestry(p: Proc) -> list[str]:
    out: list[str] = []
    q = p.parent
    while q is not None and len(out) < 20:
        out.append(q.entity_id)
        q = q.parent
    return out


def _ep_user(p: Proc) -> dict[str, Any]:
    u = p.cache.get("ep_user")
    if u is None:
        h = p.host
        uid = "S-1-5-18" if p.domain == "NT AUTHORITY" else f"S-1-5-21-{h.sid}-{1100 + len(p.user)}"
        u = p.cache["ep_user"] = {"domain": p.domain, "id": uid, "name": p.user}
    return u


def _ep_net_process(p: Proc) -> dict[str, Any]:
    d = p.cache.get("ep_net")
    if d is None:
        d = {"entity_id": p.entity_id, "executable": p.executable, "name": p.name, "pid": p.pid}
        if not p.host.lean:
            d["Ext"] = {"ancestry": _ep_ancestry(p)}
        p.cache["ep_net"] = d
    return d


def _ep_start(
    p: Proc, us: int, cmd: str, tick: int, budget: int | None
) -> tuple[dict[str, Any], int]:
    h = p.host
    ev = _ep_base(h, "endpoint.events.process", us, tick)
    ev["event"].update(action="start", category=["process"], type=["start"])
    im = p.image
    args = cmd.split()
    par = p.parent
    proc: dict[str, Any] = {
        "args": args,
        "args_count": len(args),
        "command_line": cmd,
        "entity_id": p.entity_id,
        "executable": p.executable,
        "name": p.name,
        "pid": p.pid,
        "working_directory": p.cwd,
    }
    full = budget is None
    added = 0
    if par is not None:
        n = 130 + 2 * len(par.command_line) + len(par.executable) + len(par.entity_id)
        if full or budget > added + n:
            added += n
            pargs = par.command_line.split()
            proc["parent"] = {
                "args": pargs,
                "args_count": len(pargs),
                "command_line": par.command_line,
                "entity_id": par.entity_id,
                "executable": par.executable,
                "name": par.name,
                "pid": par.pid,
            }
    if full or budget > added + 190:
        added += 190
        proc["hash"] = {"md5": im.md5, "sha1": im.sha1, "sha256": im.sha256}
    n = 110 + len(im.file_version) + len(im.description) + len(im.product) + len(im.company)
    if full or budget > added + n:
        added += n
        proc["pe"] = {
            "company": im.company,
            "description": im.description,
            "file_version": im.file_version.split(" ")[0],
            "original_file_name": im.original_file_name,
            "product": im.product,
        }
    if full or budget > added + 250:
        added += 250
        sig = {"exists": True, "status": "trusted", "subject_name": im.company, "trusted": True}
        proc["code_signature"] = sig
        proc["Ext"] = {
            "ancestry": _ep_ancestry(p),
            "code_signature": [sig],
            "token": {
                "integrity_level_name": p.integrity.lower(),
                "elevation": p.integrity == "High",
            },
        }
        proc["start"] = iso_7(p.start_us)
    ev["message"] = "Endpoint process event"
    ev["process"] = proc
    ev["user"] = _ep_user(p)
    return ev, added
