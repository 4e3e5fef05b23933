"""Sysmon event data and the four Sysmon shapes (Winlogbeat 6/7/8, NXLog)."""

from __future__ import annotations

import hashlib
from typing import Any

from devtools.synth.catalog import _OSV, _WIN
from devtools.synth.common import (
    _ECS_MAPPED,
    _SYSMON_CHANNEL,
    _SYSMON_GUID,
    _SYSMON_PROVIDER,
    _TASKS,
    _WLB7_CATEGORY,
    TOPIC_WINLOGBEAT,
    iso_ms,
    local_sec,
    utc_time,
)
from devtools.synth.hosts import Host, Proc

# --------------------------------------------------------------------------- Sysmon event data


def _sysmon_common(p: Proc, us: int) -> dict[str, Any]:
    base = p.cache.get("sysmon")
    if base is None:
        base = p.cache["sysmon"] = {
            "RuleName": "-",
            "UtcTime": "",
            "ProcessGuid": p.entity_id,
            "ProcessId": str(p.pid),
            "Image": p.executable,
        }
    ed = base.copy()
    ed["UtcTime"] = utc_time(us)
    return ed


def _ed_start(p: Proc, us: int, cmd: str, budget: int | None) -> tuple[dict[str, Any], int]:
    """Sysmon 1 event data. With a budget (lean hosts), optional groups are added only while
    they fit: parent fields, hashes, PE metadata, logon fields. Returns (data, chars added)."""
    par = p.parent
    im = p.image
    ed = _sysmon_common(p, us)
    ed["CommandLine"] = cmd
    ed["CurrentDirectory"] = p.cwd
    ed["User"] = f"{p.domain}\\{p.user}"
    ed["IntegrityLevel"] = p.integrity
    added = 0
    full = budget is None
    if par is not None:
        n = 100 + len(par.command_line) + len(par.executable)
        if full or budget > added + n:
            added += n
            ed["ParentProcessGuid"] = par.entity_id
            ed["ParentProcessId"] = str(par.pid)
            ed["ParentImage"] = par.executable
            ed["ParentCommandLine"] = par.command_line
    if full or budget > added + 200:
        added += 200
        ed["Hashes"] = im.hashes
    n = 90 + len(im.file_version) + len(im.description) + len(im.product) + len(im.company)
    if full or budget > added + n:
        added += n
        ed["FileVersion"] = im.file_version
        ed["Description"] = im.description
        ed["Product"] = im.product
        ed["Company"] = im.company
        ed["OriginalFileName"] = im.original_file_name
    if full or budget > added + 110:
        added += 110
        ed["LogonGuid"] = (
            f"{{{p.host.machine_id:08x}-{p.host.boot_s & 0xFFFF:04x}-0000-0000-00209f0c0c00}}"
        )
        ed["LogonId"] = "0xc0c9f"
        ed["TerminalSessionId"] = "1"
    return ed, added


def _ed_network(
    p: Proc, us: int, dst: str, dport: int, sport: int, dname: str, pname: str
) -> dict[str, Any]:
    v6 = ":" in dst
    ed = _sysmon_common(p, us)
    ed["User"] = f"{p.domain}\\{p.user}"
    ed["Protocol"] = "tcp"
    ed["Initiated"] = "true"
    ed["SourceIsIpv6"] = "true" if v6 else "false"
    ed["SourceIp"] = _source_ip(p.host, dst)
    ed["SourceHostname"] = p.host.fqdn
    ed["SourcePort"] = str(sport)
    ed["SourcePortName"] = "-"
    ed["DestinationIsIpv6"] = "true" if v6 else "false"
    ed["DestinationIp"] = dst
    ed["DestinationHostname"] = dname or "-"
    ed["DestinationPort"] = str(dport)
    ed["DestinationPortName"] = pname or "-"
    return ed


def _source_ip(h: Host, dst: str) -> str:
    if ":" in dst:
        return "::1" if dst == "::1" else "fe80::d1c:2a4e:9f3b:7d21"
    return "127.0.0.1" if dst.startswith("127.") else h.ip


def _ed_dns(p: Proc, us: int, qname: str, results: str) -> dict[str, Any]:
    ed = _sysmon_common(p, us)
    del ed["Image"]
    ed["QueryName"] = qname
    ed["QueryStatus"] = "0"
    ed["QueryResults"] = results
    ed["Image"] = p.executable
    return ed


def _ed_file(p: Proc, us: int, path: str) -> dict[str, Any]:
    ed = _sysmon_common(p, us)
    ed["TargetFilename"] = path
    ed["CreationUtcTime"] = ed["UtcTime"]
    return ed


_DLL_CACHE: dict[str, dict[str, str]] = {}


def _ed_image(p: Proc, us: int, dll: str) -> dict[str, Any]:
    extra = _DLL_CACHE.get(dll)
    if extra is None:
        base = dll.rsplit("\\", 1)[-1]
        extra = _DLL_CACHE[dll] = {
            "ImageLoaded": dll,
            "FileVersion": _OSV,
            "Description": base,
            "Product": _WIN,
            "Company": "Microsoft Corporation",
            "OriginalFileName": base,
            "Hashes": "SHA256=" + hashlib.sha256(dll.encode()).hexdigest().upper(),
            "Signed": "true",
            "Signature": "Microsoft Windows",
            "SignatureStatus": "Valid",
        }
    ed = _sysmon_common(p, us)
    ed.update(extra)
    return ed


def _ed_reg(p: Proc, us: int, key: str, details: str) -> dict[str, Any]:
    ed = _sysmon_common(p, us)
    ed["EventType"] = "SetValue"
    ed["TargetObject"] = key
    ed["Details"] = details
    return ed


# --------------------------------------------------------------------------- shape wrappers


def _host_meta(h: Host) -> dict[str, Any]:
    """host.* as add_host_metadata / Defend report it (one shared dict per host)."""
    hm = h.cache.get("host")
    if hm is None:
        name = h.name.lower() if h.shape == "endpoint" else h.name
        if h.lean:
            hm = {"name": name}
        else:
            hm = {
                "name": name,
                "hostname": name,
                "architecture": "x86_64",
                "os": {
                    "platform": "windows",
                    "version": "10.0",
                    "family": "windows",
                    "name": "Windows 10 Enterprise",
                    "kernel": "10.0.19041.4291 (WinBuild.160101.0800)",
                    "build": "19045.4291",
                    "type": "windows",
                },
                "id": h.host_id,
                "ip": [h.ip, "fe80::d1c:2a4e:9f3b:7d21"],
                "mac": [h.mac],
            }
        h.cache["host"] = hm
    return hm


def _beat_static(h: Host, version: str, mtype: str) -> dict[str, Any]:
    """Per-host constant parts of a Winlogbeat 7/8 record (shared dicts, serialised as-is)."""
    c = h.cache.get("beat")
    if c is None:
        meta = {"beat": "winlogbeat", "type": mtype, "version": version}
        if version.startswith("8"):
            meta["pipeline"] = f"winlogbeat-{version}-routing"
        agent: dict[str, Any] = {"name": h.name, "type": "winlogbeat", "version": version}
        if not h.lean:
            agent.update(hostname=h.name, id=h.agent_id, ephemeral_id=h.agent_id[::-1])
        c = h.cache["beat"] = {
            "@metadata": meta,
            "agent": agent,
            "ecs": {"version": "8.0.0" if version.startswith("8") else "1.6.0"},
            "log": {"level": "information"},
            "user": {
                "domain": "NT AUTHORITY",
                "identifier": "S-1-5-18",
                "name": "SYSTEM",
                "type": "User",
            },
            "process": {"pid": 3392, "thread": {"id": 5552}},
        }
    return c


def _winlog(
    h: Host, c: dict[str, Any], eid: int | str, task: str, ed: dict[str, Any] | None
) -> dict[str, Any]:
    wl: dict[str, Any] = {
        "channel": _SYSMON_CHANNEL,
        "computer_name": h.fqdn,
        "event_id": eid,
        "provider_name": _SYSMON_PROVIDER,
        "record_id": h.record_id if isinstance(eid, int) else str(h.record_id),
    }
    if ed is not None:
        wl["event_data"] = ed
    if not h.lean:
        wl.update(
            api="wineventlog",
            opcode="Info",
            process=c["process"],
            provider_guid=_SYSMON_GUID,
            task=task,
            user=c["user"],
            version=5,
        )
    return wl


def _wrap_raw(h: Host, eid: int, ed: dict[str, Any], us: int, ship_us: int) -> dict[str, Any]:
    """Wrap Sysmon event data in the host's raw shipper shape (Winlogbeat 8/6 or NXLog)."""
    h.record_id += 1
    shape = h.shape
    task = _TASKS[eid]
    if shape == "winlogbeat8":
        c = _beat_static(h, "8.13.4", "_doc")
        ev: dict[str, Any] = {
            # Winlogbeat 8 stamps the record's TimeCreated, a moment after Sysmon's UtcTime.
            "@timestamp": iso_ms(us + 1500),
            "@metadata": c["@metadata"],
            "host": _host_meta(h),
            "event": {
                "code": str(eid),
                "kind": "event",
                "provider": _SYSMON_PROVIDER,
                "created": iso_ms(ship_us),
            },
            "winlog": _winlog(h, c, str(eid), task, ed),
        }
        if not h.lean:
            ev["event"]["action"] = task
            ev["agent"] = c["agent"]
            ev["ecs"] = c["ecs"]
            ev["log"] = c["log"]
        return ev
    if shape == "winlogbeat6":
        c = h.cache.get("w6")
        if c is None:
            c = h.cache["w6"] = {
                "@metadata": {
                    "beat": "winlogbeat",
                    "type": "doc",
                    "version": "6.7.0",
                    "topic": "winlogbeat",
                },
                "beat": {"name": "WECserver", "hostname": "WECserver", "version": "6.7.0"},
                "host": {"name": "WECserver"},
                "user": {
                    "identifier": "S-1-5-18",
                    "name": "SYSTEM",
                    "domain": "NT AUTHORITY",
                    "type": "User",
                },
            }
        ev = {
            "@timestamp": iso_ms(ship_us),
            "@metadata": c["@metadata"],
            "beat": c["beat"],
            "host": c["host"],
            "computer_name": h.fqdn,
            "event_data": ed,
            "event_id": eid,
            "log_name": _SYSMON_CHANNEL,
            "record_number": str(h.record_id),
            "source_name": _SYSMON_PROVIDER,
            "type": "wineventlog",
        }
        if not h.lean:
            ev.update(
                level="Information",
                opcode="Info",
                process_id=3392,
                provider_guid=_SYSMON_GUID,
                task=task,
                thread_id=5552,
                user=c["user"],
                version=5,
            )
        return ev
    # NXLog im_msvistalog -> Logstash: flat fields; EventTime is the collector's local time.
    rec: dict[str, Any] = {
        "EventReceivedTime": local_sec(ship_us, h.tz_offset_h),
        "EventID": eid,
        "Channel": _SYSMON_CHANNEL,
        "host": h.collector,
        "EventTime": local_sec(us, h.tz_offset_h),
        "SourceName": _SYSMON_PROVIDER,
        "@timestamp": iso_ms(ship_us + 400_000),
        "RecordNumber": h.record_id,
        "Hostname": h.fqdn,
    }
    if not h.lean:
        rec.update(
            SeverityValue=2,
            ProviderGuid=_SYSMON_GUID,
            ExecutionProcessID=3392,
            AccountType="User",
            Opcode="Info",
            SourceModuleType="im_msvistalog",
            AccountName="SYSTEM",
            Domain="NT AUTHORITY",
            OpcodeValue=0,
            Severity="INFO",
            Category=task,
            Keywords=-9223372036854775808,
            UserID="S-1-5-18",
            ThreadID=5552,
            EventType="INFO",
            port=64545,
            Task=eid,
            SourceModuleName="eventlog",
            Version=5,
        )
        rec["@version"] = "1"
        rec["tags"] = ["nxlog"]
    rec.update(ed)
    return rec


_HASH_CACHE: dict[str, tuple[dict[str, str], str]] = {}


def _parse_hashes(hashes: str) -> tuple[dict[str, str], str]:
    hit = _HASH_CACHE.get(hashes)
    if hit is None:
        kv = dict(x.split("=", 1) for x in hashes.split(","))
        hit = (
            {k.lower(): v.lower() for k, v in kv.items() if k != "IMPHASH"},
            kv.get("IMPHASH", "").lower(),
        )
        _HASH_CACHE[hashes] = hit
    return hit


_W7_PROC: dict[str, dict[str, Any]] = {}
_W7_USER: dict[str, dict[str, str]] = {}


def _wlb7(h: Host, eid: int, ed: dict[str, Any], us: int, ship_us: int) -> dict[str, Any]:
    """Winlogbeat 7.x Sysmon module: ECS fields mapped in the beat, the rest in event_data."""
    h.record_id += 1
    c = _beat_static(h, "7.10.2", "_doc")
    cat, typ = _WLB7_CATEGORY[eid]
    task = _TASKS[eid]
    event: dict[str, Any] = {
        "code": eid,
        "kind": "event",
        "module": "sysmon",
        "category": cat,
        "type": typ,
        "created": iso_ms(ship_us),
    }
    # Lean hosts drop the unmapped leftovers (drop_fields: winlog.event_data) and agent.*.
    rest = None if h.lean else {k: v for k, v in ed.items() if k not in _ECS_MAPPED}
    ev: dict[str, Any] = {
        "@timestamp": iso_ms(us),
        "@metadata": c["@metadata"],
        "host": _host_meta(h),
        "event": event,
        "winlog": _winlog(h, c, eid, task, rest),
    }
    if not h.lean:
        ev["agent"] = c["agent"]
        event["provider"] = _SYSMON_PROVIDER
        event["action"] = task
        ev["ecs"] = c["ecs"]
        ev["log"] = c["log"]
    exe = ed["Image"]
    guid = ed["ProcessGuid"]
    proc = None if eid == 1 else _W7_PROC.get(guid)
    if proc is None or proc["executable"] != exe:
        proc = {
            "entity_id": guid,
            "pid": int(ed["ProcessId"]),
            "executable": exe,
            "name": exe.rsplit("\\", 1)[-1],
        }
        if eid != 1:  # shared by this process's later events; never mutated
            if len(_W7_PROC) > 50_000:
                _W7_PROC.clear()
            _W7_PROC[guid] = proc
    ev["process"] = proc
    user = ed.get("User")
    if user:
        u = _W7_USER.get(user)
        if u is None:
            dom, _, name = user.partition("\\")
            u = _W7_USER[user] = {"domain": dom, "name": name}
        ev["user"] = u
    if eid == 1:
        cmd = ed["CommandLine"]
        proc["command_line"] = cmd
        proc["args"] = cmd.split()
        proc["working_directory"] = ed["CurrentDirectory"]
        if "OriginalFileName" in ed:
            proc["pe"] = {
                "original_file_name": ed["OriginalFileName"],
                "company": ed["Company"],
                "description": ed["Description"],
                "file_version": ed["FileVersion"],
                "product": ed["Product"],
            }
        if "Hashes" in ed:
            proc["hash"], imphash = _parse_hashes(ed["Hashes"])
            proc.setdefault("pe", {})["imphash"] = imphash
        if "ParentProcessGuid" in ed:
            pimg = ed["ParentImage"]
            pcmd = ed["ParentCommandLine"]
            proc["parent"] = {
                "entity_id": ed["ParentProcessGuid"],
                "pid": int(ed["ParentProcessId"]),
                "executable": pimg,
                "name": pimg.rsplit("\\", 1)[-1],
                "command_line": pcmd,
                "args": pcmd.split(),
            }
    elif eid == 3:
        dst = ed["DestinationIp"]
        ev["source"] = {"ip": ed["SourceIp"], "port": int(ed["SourcePort"])}
        ev["destination"] = {"ip": dst, "port": int(ed["DestinationPort"])}
        if ed["DestinationHostname"] != "-":
            ev["destination"]["domain"] = ed["DestinationHostname"]
        net = {"transport": "tcp", "direction": "egress", "type": "ipv6" if ":" in dst else "ipv4"}
        if ed["DestinationPortName"] != "-":
            net["protocol"] = ed["DestinationPortName"]
        ev["network"] = net
        if not h.lean:
            ev["source"]["domain"] = ed["SourceHostname"]
            ev["related"] = {"ip": [ed["SourceIp"], dst]}
    elif eid == 22:
        q = ed["QueryName"]
        ips = [
            x.removeprefix("::ffff:")
            for x in ed["QueryResults"].split(";")
            if x and "type:" not in x
        ]
        ev["dns"] = (
            {"question": {"name": q}, "resolved_ip": ips} if ips else {"question": {"name": q}}
        )
        ev["network"] = {"protocol": "dns"}
    elif eid == 11:
        path = ed["TargetFilename"]
        d, _, n = path.rpartition("\\")
        ev["file"] = {"path": path, "directory": d, "name": n}
    elif eid == 13:
        key = ed["TargetObject"]
        ev["registry"] = {"path": key, "value": key.rsplit("\\", 1)[-1]}
    return ev


def _sysmon_record(
    h: Host, eid: int, ed: dict[str, Any], us: int, ship_us: int
) -> tuple[str, dict[str, Any]]:
    if h.shape == "winlogbeat7":
        return TOPIC_WINLOGBEAT, _wlb7(h, eid, ed, us, ship_us)
    return TOPIC_WINLOGBEAT, _wrap_raw(h, eid, ed, us, ship_us)
