"""Constants shared by the generator's modules, and time formatting."""

from __future__ import annotations

import time
from collections.abc import Mapping

RULE = "msbuild_making_network_connections"
TOPIC_WINLOGBEAT = "winlogbeat"
TOPIC_PROCESS = "logs-endpoint.events.process"
TOPIC_NETWORK = "logs-endpoint.events.network"
TTL_MS = 9 * 60 * 1000
SHAPES = ("winlogbeat7", "winlogbeat8", "winlogbeat6", "nxlog", "endpoint")
DEFAULT_SHAPES: Mapping[str, float] = {
    "winlogbeat7": 0.35,
    "winlogbeat8": 0.2,
    "endpoint": 0.35,
    "winlogbeat6": 0.05,
    "nxlog": 0.05,
}
_LOOPBACK_ORDERED = ("127.0.0.1", "::1", "::ffff:127.0.0.1")
LOOPBACK = frozenset(_LOOPBACK_ORDERED)

_SYSMON_GUID = "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}"
_SYSMON_PROVIDER = "Microsoft-Windows-Sysmon"
_SYSMON_CHANNEL = "Microsoft-Windows-Sysmon/Operational"
_TASKS = {
    1: "Process Create (rule: ProcessCreate)",
    3: "Network connection detected (rule: NetworkConnect)",
    5: "Process terminated (rule: ProcessTerminate)",
    7: "Image loaded (rule: ImageLoad)",
    11: "File created (rule: FileCreate)",
    13: "Registry value set (rule: RegistryEvent)",
    22: "Dns query (rule: DnsQuery)",
}
# event.category / event.type as Winlogbeat 7.10's Sysmon module sets them.
_WLB7_CATEGORY: dict[int, tuple[list[str], list[str]]] = {
    1: (["process"], ["start", "process_start"]),
    3: (["network"], ["connection", "start", "protocol"]),
    5: (["process"], ["end", "process_end"]),
    7: (["process"], ["change"]),
    11: (["file"], ["creation"]),
    13: (["configuration", "registry"], ["change"]),
    22: (["network"], ["connection", "protocol", "info"]),
}
_ECS_MAPPED = frozenset(
    {
        "UtcTime",
        "ProcessGuid",
        "ProcessId",
        "Image",
        "CommandLine",
        "CurrentDirectory",
        "User",
        "Hashes",
        "ParentProcessGuid",
        "ParentProcessId",
        "ParentImage",
        "ParentCommandLine",
        "OriginalFileName",
        "SourceIp",
        "SourcePort",
        "DestinationIp",
        "DestinationPort",
        "Protocol",
        "QueryName",
        "TargetFilename",
        "TargetObject",
    }
)

# --------------------------------------------------------------------------- time formatting

_SEC_CACHE: dict[int, tuple[str, str]] = {}


def _sec(sec: int) -> tuple[str, str]:
    """Return ('YYYY-MM-DDTHH:MM:SS', 'YYYY-MM-DD HH:MM:SS') for a Unix second, cached."""
    hit = _SEC_CACHE.get(sec)
    if hit is None:
        if len(_SEC_CACHE) > 100_000:
            _SEC_CACHE.clear()
        t = time.gmtime(sec)
        d = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}",
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}",
        )
        hit = (f"{d[0]}T{d[1]}", f"{d[0]} {d[1]}")
        _SEC_CACHE[sec] = hit
    return hit


def iso_ms(us: int) -> str:
    """ECS/Beats timestamp: milliseconds and Z."""
    s, r = divmod(us, 1_000_000)
    return f"{_sec(s)[0]}.{r // 1000:03d}Z"


def iso_7(us: int, tick: int = 0) -> str:
    """Elastic Defend timestamp: 7 fractional digits (100 ns ticks) and Z."""
    s, r = divmod(us, 1_000_000)
    return f"{_sec(s)[0]}.{r * 10 + tick:07d}Z"


def utc_time(us: int) -> str:
    """Sysmon UtcTime: 'YYYY-MM-DD HH:MM:SS.mmm'."""
    s, r = divmod(us, 1_000_000)
    return f"{_sec(s)[1]}.{r // 1000:03d}"


def local_sec(us: int, offset_h: int) -> str:
    """NXLog EventTime/EventReceivedTime: the collector's local time, whole seconds."""
    return _sec(us // 1_000_000 + offset_h * 3600)[1]
