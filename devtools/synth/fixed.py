"""Fixed Winlogbeat 7.x ECS documents (Sysmon module): the worker tests and the storm bench."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

MSBUILD = r"C:\Windows\Microsoft.NET\Framework64\v4.0.30319\MSBuild.exe"
BASE = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)


def ts(offset_ms: int) -> str:
    moment = BASE + timedelta(milliseconds=offset_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def entity(n: int, tag: str = "a") -> str:
    return f"{{d273d0f0-{tag[:4]:0>4}-5f67-0b08-{n:012d}}}"


def start(entity_id: str, offset_ms: int, host: str = "WS-FIN-01", image: str = MSBUILD) -> bytes:
    return orjson.dumps(
        {
            "@timestamp": ts(offset_ms),
            "event": {
                "category": ["process"],
                "type": ["start", "process_start"],
                "kind": "event",
                "code": "1",
                "module": "sysmon",
                "provider": "Microsoft-Windows-Sysmon",
                "action": "Process Create (rule: ProcessCreate)",
            },
            "process": {
                "entity_id": entity_id,
                "pid": 4242,
                "name": image.rsplit("\\", 1)[-1],
                "executable": image,
                "command_line": f"{image} C:\\Users\\Public\\build.xml",
                "parent": {"name": "cmd.exe", "executable": r"C:\Windows\System32\cmd.exe"},
            },
            "host": {"name": host, "hostname": host, "os": {"family": "windows"}},
            "user": {"name": "jdoe", "domain": "CORP"},
            "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_id": 1},
            "agent": {"type": "winlogbeat", "version": "7.10.2"},
            "ecs": {"version": "1.6.0"},
        }
    )


def network(
    entity_id: str,
    offset_ms: int,
    ip: str = "203.0.113.7",
    port: int = 443,
    host: str = "WS-FIN-01",
    image: str = MSBUILD,
) -> bytes:
    return orjson.dumps(
        {
            "@timestamp": ts(offset_ms),
            "event": {
                "category": ["network"],
                "type": ["connection", "start", "protocol"],
                "kind": "event",
                "code": "3",
                "module": "sysmon",
                "provider": "Microsoft-Windows-Sysmon",
                "action": "Network connection detected (rule: NetworkConnect)",
            },
            "process": {
                "entity_id": entity_id,
                "pid": 4242,
                "name": image.rsplit("\\", 1)[-1],
                "executable": image,
            },
            "source": {"ip": "10.1.2.3", "port": 50123},
            "destination": {"ip": ip, "port": port},
            "network": {"transport": "tcp", "direction": "outbound"},
            "host": {"name": host, "hostname": host, "os": {"family": "windows"}},
            "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_id": 3},
            "agent": {"type": "winlogbeat", "version": "7.10.2"},
            "ecs": {"version": "1.6.0"},
        }
    )
