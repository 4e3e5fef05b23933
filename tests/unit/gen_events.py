"""Generator of a realistic ECS event stream for throughput measurements.

About 600-byte Winlogbeat-7-style Sysmon documents (process starts, network connections,
DNS queries, file events) of which `msbuild_ratio` concern MSBuild.exe, with MSBuild starts
followed by connections so the stream also produces alerts. Usage:

    python tests/unit/gen_events.py OUT.ndjson [COUNT] [MSBUILD_RATIO]
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator

import orjson

_IMAGES = [
    "C:\\Windows\\System32\\svchost.exe",
    "C:\\Windows\\explorer.exe",
    "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
    "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
    "C:\\Windows\\System32\\lsass.exe",
    "C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE",
]
_MSBUILD = "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\MSBuild.exe"


def _iso(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    minutes, sec = divmod(seconds, 60)
    hours, mins = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"2024-03-{days + 1:02d}T{hours:02d}:{mins:02d}:{sec:02d}.{millis:03d}Z"


def _doc(rng: random.Random, ms: int, image: str, guid: str, kind: str) -> dict[str, object]:
    host = f"WKS-{rng.randrange(500):04d}"
    doc: dict[str, object] = {
        "@timestamp": _iso(ms),
        "agent": {"type": "winlogbeat", "version": "7.17.0", "hostname": host},
        "host": {"name": host, "os": {"type": "windows", "family": "windows"}},
        "process": {
            "entity_id": guid,
            "pid": rng.randrange(100, 60000),
            "executable": image,
            "name": image.rsplit("\\", 1)[-1],
        },
        "user": {"name": "alice", "domain": "CORP"},
        "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "record_id": ms},
    }
    if kind == "start":
        doc["event"] = {
            "category": ["process"],
            "type": ["start", "process_start"],
            "code": "1",
            "kind": "event",
        }
        doc["process"]["command_line"] = f'"{image}" /nologo /p:Configuration=Release'  # type: ignore[index]
    elif kind == "network":
        doc["event"] = {
            "category": ["network"],
            "type": ["connection", "start", "protocol"],
            "code": "3",
            "kind": "event",
        }
        doc["destination"] = {
            "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            "port": rng.choice([80, 443, 445, 8080]),
        }
        doc["source"] = {"ip": "10.0.0.5", "port": rng.randrange(49152, 65535)}
        doc["network"] = {"transport": "tcp", "direction": "egress"}
    else:
        doc["event"] = {"category": ["file"], "type": ["creation"], "code": "11", "kind": "event"}
        doc["file"] = {"path": f"C:\\Users\\alice\\AppData\\Local\\Temp\\tmp{ms:x}.tmp"}
    return doc


def generate(count: int, msbuild_ratio: float = 0.01, seed: int = 0) -> Iterator[bytes]:
    """`count` NDJSON lines (without newline); MSBuild starts are followed by a connection."""
    rng = random.Random(seed)
    ms = 0
    pending: list[str] = []
    for index in range(count):
        ms += rng.randrange(0, 200)
        if rng.random() < msbuild_ratio:
            if pending and rng.random() < 0.5:
                guid = pending.pop()
                yield orjson.dumps(_doc(rng, ms, _MSBUILD, guid, "network"))
            else:
                guid = f"{{{index:08x}-0000-0000-0000-{rng.randrange(16**12):012x}}}"
                pending.append(guid)
                yield orjson.dumps(_doc(rng, ms, _MSBUILD, guid, "start"))
            continue
        guid = f"{{{rng.randrange(16**8):08x}-1111-0000-0000-{rng.randrange(16**12):012x}}}"
        kind = rng.choice(["start", "network", "network", "file", "file"])
        yield orjson.dumps(_doc(rng, ms, rng.choice(_IMAGES), guid, kind))


def main(argv: list[str]) -> None:
    out = argv[1]
    count = int(argv[2]) if len(argv) > 2 else 1_000_000
    ratio = float(argv[3]) if len(argv) > 3 else 0.01
    with open(out, "wb") as handle:
        for line in generate(count, ratio):
            handle.write(line + b"\n")


if __name__ == "__main__":
    main(sys.argv)
