"""Seeded generator of realistic Windows endpoint telemetry, as shippers put it on Kafka.

Why: the benchmark needs hundreds of thousands of events with a known answer, and tests need
the same shapes the engine meets in production (docs/semantics.md, Inputs), without shipping large
recordings. Every record is a JSON object in one of these shapes:

- ``winlogbeat7``: Winlogbeat 7.x with its Sysmon module (ECS, nested, ``@metadata``), topic
  ``winlogbeat``; ``@timestamp`` is Sysmon's UtcTime, ``event.created`` the shipper's time.
- ``winlogbeat8``: Winlogbeat 8.x raw output (ECS mapping happens in Elasticsearch, not here):
  ``winlog.event_id`` and ``event.code`` are strings, Sysmon fields under ``winlog.event_data``.
- ``winlogbeat6``: Winlogbeat 6.x raw output (top-level ``event_id``, ``event_data``,
  ``computer_name``; ``host.name`` is the event collector).
- ``nxlog``: NXLog im_msvistalog through Logstash, flat Sysmon fields; ``@timestamp`` is
  pipeline time. Published on ``winlogbeat`` too, as the security-datasets pipeline did.
- ``endpoint``: Elastic Defend through Elastic Agent's Kafka output, topics
  ``logs-endpoint.events.process`` and ``logs-endpoint.events.network``; ``@timestamp`` has 7
  fractional digits and entity ids are base64.

The expected alerts of "MsBuild Making Network Connections" are computed exactly while
generating: one alert per MSBuild start with a qualifying network event of the same entity id
(any destination except exactly 127.0.0.1 / ::1 / ::ffff:127.0.0.1, or none at all as in a DNS
query) whose millisecond event time lies in [start, start + ttl].
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import heapq
import ipaddress
import itertools
import random
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

__all__ = [
    "DEFAULT_SHAPES",
    "RULE",
    "SHAPES",
    "TOPIC_NETWORK",
    "TOPIC_PROCESS",
    "TOPIC_WINLOGBEAT",
    "TTL_MS",
    "Expected",
    "Host",
    "Proc",
    "Record",
    "Scenario",
    "Synth",
    "background_event",
    "generate",
    "iter_records",
    "make_host",
    "make_proc",
    "populate_host",
    "reference_alerts",
    "render_dns",
    "render_network",
    "render_process_end",
    "render_process_start",
    "rule_view",
]

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


# --------------------------------------------------------------------------- static catalogue


@dataclass(frozen=True, slots=True)
class Image:
    """A Windows executable with the PE metadata and hashes Sysmon and Defend report."""

    path: str
    description: str
    product: str
    company: str
    file_version: str
    original_file_name: str
    md5: str
    sha1: str
    sha256: str
    imphash: str

    @property
    def name(self) -> str:
        return self.path.rsplit("\\", 1)[-1]

    @property
    def hashes(self) -> str:
        return (
            f"SHA1={self.sha1},MD5={self.md5},SHA256={self.sha256},IMPHASH={self.imphash}".upper()
        )


def _image(
    path: str, description: str, product: str, version: str, company: str = "Microsoft Corporation"
) -> Image:
    h = hashlib.sha256(path.lower().encode()).digest()
    h2 = hashlib.sha512(path.lower().encode()).hexdigest()
    return Image(
        path=path,
        description=description,
        product=product,
        company=company,
        file_version=version,
        original_file_name=path.rsplit("\\", 1)[-1],
        md5=h[:16].hex(),
        sha1=h2[:40],
        sha256=h.hex(),
        imphash=h2[40:72],
    )


_WIN = "Microsoft® Windows® Operating System"
_VS = r"C:\Program Files\Microsoft Visual Studio\2022\Professional"
_OSV = "10.0.19041.1 (WinBuild.160101.0800)"
_ALL_IMAGES: tuple[Image, ...] = (
    _image(r"C:\Windows\System32\svchost.exe", "Host Process for Windows Services", _WIN, _OSV),
    _image(r"C:\Windows\System32\services.exe", "Services and Controller app", _WIN, _OSV),
    _image(r"C:\Windows\System32\lsass.exe", "Local Security Authority Process", _WIN, _OSV),
    _image(r"C:\Windows\explorer.exe", "Windows Explorer", _WIN, _OSV),
    _image(r"C:\Windows\System32\cmd.exe", "Windows Command Processor", _WIN, _OSV),
    _image(r"C:\Windows\System32\conhost.exe", "Console Window Host", _WIN, _OSV),
    _image(
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        "Windows PowerShell",
        _WIN,
        _OSV,
    ),
    _image(r"C:\Windows\System32\wbem\WmiPrvSE.exe", "WMI Provider Host", _WIN, _OSV),
    _image(r"C:\Windows\System32\RuntimeBroker.exe", "Runtime Broker", _WIN, _OSV),
    _image(r"C:\Windows\System32\SearchProtocolHost.exe", "Microsoft Windows Search", _WIN, _OSV),
    _image(r"C:\Windows\System32\backgroundTaskHost.exe", "Background Task Host", _WIN, _OSV),
    _image(r"C:\Windows\System32\taskhostw.exe", "Host Process for Windows Tasks", _WIN, _OSV),
    _image(
        r"C:\Program Files\Google\Chrome\Application\chrome.exe",
        "Google Chrome",
        "Google Chrome",
        "124.0.6367.208",
        "Google LLC",
    ),
    _image(
        r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe",
        "Microsoft Edge",
        "Microsoft Edge",
        "124.0.2478.97",
    ),
    _image(
        r"C:\Program Files\Microsoft Office\root\Office16\OUTLOOK.EXE",
        "Microsoft Outlook",
        "Microsoft Outlook",
        "16.0.17531.20140",
    ),
    _image(
        r"C:\Program Files\Microsoft OneDrive\OneDrive.exe",
        "Microsoft OneDrive",
        "Microsoft OneDrive",
        "24.076.0414.0005",
    ),
    _image(r"C:\Program Files\dotnet\dotnet.exe", ".NET Host", "Microsoft .NET", "8.0.424.16909"),
    _image(
        r"C:\Program Files\Git\cmd\git.exe",
        "Git for Windows",
        "Git",
        "2.45.1.1",
        "The Git Development Community",
    ),
    _image(
        r"C:\Program Files\Microsoft Visual Studio\2022\Professional\Common7\IDE\devenv.exe",
        "Microsoft Visual Studio 2022",
        "Microsoft® Visual Studio®",
        "17.9.34728.123",
    ),
    _image(
        _VS + r"\MSBuild\Current\Bin\amd64\MSBuildTaskHost.exe",
        "MSBuildTaskHost.exe",
        "Microsoft® Build Tools®",
        "17.9.8.16306",
    ),
    _image(
        r"C:\Windows\Microsoft.NET\Framework64\v4.0.30319\MSBuild.exe",
        "MSBuild.exe",
        "Microsoft® .NET Framework",
        "4.8.4084.0 built by: NET48REL1",
    ),
    _image(
        _VS + r"\MSBuild\Current\Bin\amd64\MSBuild.exe",
        "MSBuild.exe",
        "Microsoft® Build Tools®",
        "17.9.8.16306",
    ),
    _image(
        r"C:\Program Files\Windows Defender\MsMpEng.exe",
        "Antimalware Service Executable",
        _WIN,
        "4.18.24030.9",
    ),
)
IMAGES: dict[str, Image] = {i.name.lower(): i for i in _ALL_IMAGES if i.name != "MSBuild.exe"}
MSBUILD_FRAMEWORK = next(
    i for i in _ALL_IMAGES if i.name == "MSBuild.exe" and "Framework64" in i.path
)
MSBUILD_VS = next(i for i in _ALL_IMAGES if i.name == "MSBuild.exe" and "Visual Studio" in i.path)

# name -> (parent name, base command line, weight as a background process start)
_BG_STARTS: list[tuple[str, str, str]] = [
    ("svchost.exe", "services.exe", "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule"),
    (
        "svchost.exe",
        "services.exe",
        "C:\\Windows\\System32\\svchost.exe -k LocalServiceNetworkRestricted -p",
    ),
    ("chrome.exe", "explorer.exe", '"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe"'),
    (
        "chrome.exe",
        "chrome.exe",
        '"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe" --type=renderer '
        "--lang=en-US --js-flags=--ms-user-locale= --device-scale-factor=1 --num-raster-threads=4",
    ),
    (
        "msedge.exe",
        "explorer.exe",
        '"C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe"',
    ),
    (
        "powershell.exe",
        "explorer.exe",
        '"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe" -NoLogo',
    ),
    (
        "powershell.exe",
        "svchost.exe",
        "powershell.exe -ExecutionPolicy Bypass -NoProfile -File "
        "C:\\ProgramData\\Intune\\Scripts\\check.ps1",
    ),
    ("cmd.exe", "explorer.exe", '"C:\\Windows\\system32\\cmd.exe"'),
    ("conhost.exe", "cmd.exe", "\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1"),
    ("RuntimeBroker.exe", "svchost.exe", "C:\\Windows\\System32\\RuntimeBroker.exe -Embedding"),
    (
        "SearchProtocolHost.exe",
        "svchost.exe",
        '"C:\\Windows\\system32\\SearchProtocolHost.exe" Global\\UsGthrFltPipeMssGthrPipe3_',
    ),
    (
        "backgroundTaskHost.exe",
        "svchost.exe",
        '"C:\\Windows\\system32\\backgroundTaskHost.exe" '
        "-ServerName:BackgroundTaskHost.WebAccountProvider",
    ),
    ("taskhostw.exe", "svchost.exe", "taskhostw.exe Install $(Arg0)"),
    (
        "WmiPrvSE.exe",
        "svchost.exe",
        "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding",
    ),
    (
        "OUTLOOK.EXE",
        "explorer.exe",
        '"C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE"',
    ),
    (
        "OneDrive.exe",
        "explorer.exe",
        '"C:\\Program Files\\Microsoft OneDrive\\OneDrive.exe" /background',
    ),
    ("git.exe", "cmd.exe", "git fetch --all --prune"),
    # dotnet build runs MSBuild in process (MSBuild.dll): it mentions MSBuild, is not MSBuild.exe.
    (
        "dotnet.exe",
        "cmd.exe",
        '"C:\\Program Files\\dotnet\\dotnet.exe" '
        '"C:\\Program Files\\dotnet\\sdk\\8.0.204\\MSBuild.dll" '
        "-maxcpucount -verbosity:m -restore -consoleloggerparameters:Summary",
    ),
    (
        "MSBuildTaskHost.exe",
        "devenv.exe",
        f'"{_VS}\\MSBuild\\Current\\Bin\\amd64\\MSBuildTaskHost.exe" /nologo /nodemode:2',
    ),
]
_LONG_LIVED = [
    ("services.exe", "C:\\Windows\\system32\\services.exe"),
    ("lsass.exe", "C:\\Windows\\system32\\lsass.exe"),
    ("explorer.exe", "C:\\Windows\\Explorer.EXE"),
    ("svchost.exe", "C:\\Windows\\system32\\svchost.exe -k NetworkService -p -s Dnscache"),
    ("svchost.exe", "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s wuauserv"),
    ("chrome.exe", '"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe"'),
    (
        "msedge.exe",
        '"C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe" --no-startup-window',
    ),
    ("OUTLOOK.EXE", '"C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE"'),
    ("OneDrive.exe", '"C:\\Program Files\\Microsoft OneDrive\\OneDrive.exe" /background'),
    ("MsMpEng.exe", '"C:\\Program Files\\Windows Defender\\MsMpEng.exe"'),
    (
        "devenv.exe",
        f'"{_VS}\\Common7\\IDE\\devenv.exe"',
    ),
    ("powershell.exe", '"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"'),
]
_EXTERNAL_IPS = [
    "142.250.185.78", "142.250.74.110", "172.217.16.142", "13.107.42.14", "13.107.6.156",
    "20.190.159.4", "20.190.160.20", "40.126.31.73", "52.113.194.132", "52.96.165.146",
    "52.182.143.212", "104.208.16.94", "23.48.164.210", "23.62.228.91", "151.101.1.69",
    "151.101.65.140", "140.82.121.4", "140.82.114.25", "185.199.108.133", "104.16.132.229",
    "204.79.197.200", "13.69.109.131", "20.42.65.92", "35.186.224.25", "34.120.208.123",
    "2606:4700::6810:84e5", "2a00:1450:4001:82b::200e", "2620:1ec:21::14",
]  # fmt: skip
_EXTERNAL_NAMES = [
    "www.google.com", "clients2.google.com", "login.microsoftonline.com", "outlook.office365.com",
    "teams.microsoft.com", "settings-win.data.microsoft.com", "github.com", "api.github.com",
    "nuget.org", "api.nuget.org", "onedrive.live.com", "ctldl.windowsupdate.com",
    "self.events.data.microsoft.com", "edge.microsoft.com", "pkgs.dev.azure.com",
]  # fmt: skip
_PORTS = [(443, "https"), (443, "https"), (443, "https"), (80, "http"), (53, "domain"),
          (88, "kerberos"), (445, "microsoft-ds"), (135, "epmap"), (389, "ldap")]  # fmt: skip
_FILE_DIRS = [
    "C:\\Users\\{u}\\AppData\\Local\\Temp\\",
    "C:\\Users\\{u}\\AppData\\Local\\Google\\Chrome\\User Data\\Default\\Cache\\Cache_Data\\",
    "C:\\Windows\\Prefetch\\",
    "C:\\ProgramData\\Microsoft\\Windows Defender\\Scans\\History\\Service\\",
    "C:\\Users\\{u}\\source\\repos\\Contoso.Billing\\src\\Contoso.Billing.Api\\obj\\Debug\\net8.0\\",
]
_REG_KEYS = [
    "HKU\\S-1-5-21-{sid}\\Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\RecentDocs\\",
    "HKLM\\System\\CurrentControlSet\\Services\\bam\\State\\UserSettings\\S-1-5-21-{sid}\\",
    "HKLM\\SOFTWARE\\Microsoft\\Windows Defender\\Signature Updates\\",
]
_DLLS = [
    "C:\\Windows\\System32\\ntdll.dll", "C:\\Windows\\System32\\kernel32.dll",
    "C:\\Windows\\System32\\KernelBase.dll", "C:\\Windows\\System32\\advapi32.dll",
    "C:\\Windows\\System32\\combase.dll", "C:\\Windows\\System32\\rpcrt4.dll",
    "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\clr.dll",
    "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\mscoreei.dll",
    _VS + "\\MSBuild\\Current\\Bin\\Microsoft.Build.dll",
]  # fmt: skip
_USERS = ["jdoe", "asmith", "mgarcia", "lchen", "pnovak", "okafor", "sbeavers", "pgustavo", "build"]
# Realistic argument text used to bring records to the requested size.
_PAD_ARGS = (
    " /p:Configuration=Release /p:Platform=x64 /p:TreatWarningsAsErrors=false /nologo"
    " /verbosity:minimal /m:4 /restore /p:RestorePackagesConfig=true /p:DeployOnBuild=false"
    " /p:OutDir=C:\\agent\\_work\\12\\b\\bin\\ /bl:C:\\agent\\_work\\12\\a\\msbuild.binlog"
    " --field-trial-handle=1960,i,9403726459129387460,1539288227913094385,262144"
    " --variations-seed-version=20240513-180105.470000 --enable-features=msEdgeSidebar"
    " --disable-features=SpareRendererForSitePerProcess --mojo-platform-channel-handle=2236"
    " -EncodedCommand SQBuAHYAbwBrAGUALQBXAGUAYgBSAGUAcQB1AGUAcwB0ACAALQBVAHMAZQBCAGEAcwBpAGMA"
    "UABhAHIAcwBpAG4AZwAgAC0AVQByAGkAIABoAHQAdABwAHMAOgAvAC8AaQBuAHQAdQBuAGUALgBjAG8AbgB0AG8A"
    "cwBvAC4AYwBvAG0ALwBoAGUAYQBsAHQAaAAgAHwAIABPAHUAdAAtAE4AdQBsAGwA"
) * 8


def _pad(n: int) -> str:
    """Argument text of about n characters (ending on a word boundary)."""
    if n <= 0:
        return ""
    n = min(n, len(_PAD_ARGS))
    cut = _PAD_ARGS.rfind(" ", 0, n + 1)
    return _PAD_ARGS[:cut] if cut > 0 else ""


# --------------------------------------------------------------------------- hosts and processes


@dataclass(slots=True)
class Host:
    """An endpoint with one shipper shape; holds counters so ids stay unique per host."""

    shape: str
    name: str
    domain: str
    ip: str
    mac: str
    machine_id: int
    agent_id: str
    host_id: str
    collector: str = "wec.corp.contoso.com"
    tz_offset_h: int = -4
    sid: str = "4228717743-1032521047-1810997296"
    record_id: int = 1_000_000
    pid_next: int = 4000
    proc_seq: int = 0x0800
    ev_seq: int = 1_000
    users: tuple[str, ...] = ("jdoe",)
    lean: bool = False  # drop optional shipper metadata (small records for the benchmark)
    boot_s: int = 0
    fqdn: str = ""
    procs: list[Proc] = field(default_factory=list)
    by_name: dict[str, Proc] = field(default_factory=dict)  # long-lived parents by image name
    cache: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fqdn = self.fqdn or f"{self.name}.{self.domain}"


@dataclass(slots=True)
class Proc:
    """A process: identity fields every event of it repeats, plus its parent."""

    host: Host
    entity_id: str
    pid: int
    image: Image
    executable: str
    command_line: str
    user: str
    domain: str
    start_us: int
    parent: Proc | None = None
    integrity: str = "Medium"
    cwd: str = "C:\\Windows\\system32\\"
    name: str = ""
    is_msbuild: bool = False
    cache: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.name = self.executable.rsplit("\\", 1)[-1]
        self.is_msbuild = self.name.lower() == "msbuild.exe"  # `:` compares case-insensitively


def make_host(
    shape: str, name: str, *, index: int, domain: str = "corp.contoso.com", seed: int = 0
) -> Host:
    """Create a host with stable ids derived from its name and seed: reproducible scenarios."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()
    return Host(
        shape=shape,
        name=name,
        domain=domain,
        ip=f"10.{20 + index // 250 % 200}.{index // 250 % 250}.{10 + index % 240}",
        mac="-".join(digest[i : i + 2].upper() for i in range(0, 12, 2)),
        machine_id=int(digest[12:20], 16),
        agent_id=f"{digest[20:28]}-{digest[28:32]}-4{digest[33:36]}-a{digest[37:40]}-{digest[40:52]}",
        host_id=f"{digest[8:16]}-{digest[16:20]}-4{digest[21:24]}-b{digest[25:28]}-{digest[52:64]}",
        users=tuple(_USERS[(index + k) % len(_USERS)] for k in range(2)),
    )


def _entity_id(host: Host, pid: int, start_us: int) -> str:
    """Sysmon ProcessGuid (braces, lowercase) or Defend's base64 entity id, unique per host."""
    host.proc_seq += 1
    if host.shape == "endpoint":
        filetime = start_us * 10 + 116_444_736_000_000_000 + host.proc_seq % 10
        return base64.b64encode(f"{host.agent_id}-{pid}-{filetime}".encode()).decode()
    t = start_us // 1_000_000
    s = host.proc_seq
    return (
        f"{{{host.machine_id:08x}-{t & 0xFFFF:04x}-{t >> 16 & 0xFFFF:04x}-"
        f"{s & 0xFFFF:04x}-{s >> 16 & 0xFF:02x}0000000800}}"
    )


def make_proc(
    host: Host,
    image: Image,
    command_line: str,
    start_us: int,
    *,
    parent: Proc | None = None,
    user: str | None = None,
    executable: str | None = None,
    pid: int | None = None,
    entity_id: str | None = None,
    integrity: str = "Medium",
) -> Proc:
    """Create a process on a host; entity id and pid are allocated unless given."""
    if pid is None:
        host.pid_next = 4000 + (host.pid_next - 4000 + 4 * (1 + host.proc_seq % 7)) % 60000
        pid = host.pid_next
    user = user or host.users[0]
    return Proc(
        host=host,
        entity_id=entity_id or _entity_id(host, pid, start_us),
        pid=pid,
        image=image,
        executable=executable or image.path,
        command_line=command_line,
        user=user,
        domain="CORP"
        if user not in ("SYSTEM", "LOCAL SERVICE", "NETWORK SERVICE")
        else "NT AUTHORITY",
        start_us=start_us,
        parent=parent,
        integrity=integrity,
    )


def populate_host(h: Host, rng: random.Random, boot_us: int) -> None:
    """Give a host the long-lived processes (started at boot, before any capture) that
    background events are attributed to and that new processes descend from."""
    h.boot_s = boot_us // 1_000_000
    for name, cmd in _LONG_LIVED:
        if name in ("services.exe", "lsass.exe", "explorer.exe"):
            parent = None  # their parents (wininit, userinit) have exited or are not modelled
        elif name == "svchost.exe":
            parent = h.by_name["services.exe"]
        else:
            parent = h.by_name["explorer.exe"]
        user = "SYSTEM" if parent is None or name == "svchost.exe" else h.users[0]
        if name == "explorer.exe":
            user = h.users[0]
        start = boot_us + (1 + int(rng.random() * 600)) * 1_000_000
        p = make_proc(h, IMAGES[name.lower()], cmd, start, parent=parent, user=user)
        h.procs.append(p)
        h.by_name.setdefault(p.name, p)


def background_event(rng: random.Random, h: Host, us: int) -> tuple[str, dict[str, Any]]:
    """One background (non-MSBuild.exe) event of a populated host at event time us."""
    table = _BG_TABLE
    return _render(table[int(rng.random() * len(table))](rng, h, us), us)


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


# --------------------------------------------------------------------------- the stream


class Record(NamedTuple):
    """One Kafka record: topic, value bytes, and the shipper's send time (record timestamp)."""

    topic: str
    value: bytes
    timestamp_ms: int


@dataclass(slots=True)
class Expected:
    """The answer: entity ids that must alert once each, and MSBuild ids that must not alert."""

    alerts: set[str] = field(default_factory=set)
    must_not_alert: set[str] = field(default_factory=set)
    msbuild_events: int = 0
    duplicates: int = 0

    @property
    def expected_alerts(self) -> int:
        return len(self.alerts)

    def as_json(self) -> dict[str, Any]:
        return {
            "alerts": [{"process.entity_id": e, "rule": RULE} for e in sorted(self.alerts)],
            "must_not_alert": sorted(self.must_not_alert),
        }


@dataclass(slots=True)
class Scenario:
    """A fully generated stream: the records in arrival order and the expected alerts."""

    records: list[Record]
    expected: Expected

    @property
    def expected_alerts(self) -> int:
        return self.expected.expected_alerts


# MSBuild scenario kinds and their weights; the comment says whether the rule must fire.
_MSB_KINDS: list[tuple[str, float]] = [
    ("external", 0.34),  # start, then 1-3 connections out: alert
    ("dns", 0.10),  # start, then a DNS query only (no destination.ip): alert
    ("loopback_then_external", 0.06),  # loopback first, then external: alert
    ("edge_address", 0.05),  # 127.0.0.2 / 0.0.0.0 / ::  are not excluded: alert
    ("same_ms", 0.03),  # connection in the start's millisecond: alert
    ("loopback_only", 0.16),  # 127.0.0.1, ::1, ::ffff:127.0.0.1 only: no alert
    ("start_only", 0.10),  # no network at all: no alert
    ("child_connects", 0.07),  # MSBuild's child powershell connects: no alert
    ("late", 0.05),  # connection more than 9 minutes after the start: no alert
    ("network_only", 0.04),  # connection of an MSBuild started before capture: no alert
]
_MSB_CMDS = [
    "C:\\Users\\Public\\payload.xml",
    "C:\\Windows\\Tasks\\pshell.xml",
    "C:\\Users\\{u}\\AppData\\Local\\Temp\\build.proj",
    "/nologo /noconsolelogger C:\\ProgramData\\update.csproj",
]
_DEV_CMDS = [
    "C:\\Users\\{u}\\source\\repos\\Contoso.Billing\\Contoso.Billing.sln "
    "/t:Build /p:Configuration=Debug",
    "/nodemode:1 /nodeReuse:true /low:false",
    "C:\\agent\\_work\\12\\s\\Contoso.Web.csproj /t:Restore;Build",
]


class Synth:
    """Iterable record stream; `expected` is complete once the iteration has finished.

    Events are produced in event-time order (a steady rate with jitter); MSBuild scenarios
    schedule their later events in a heap, and `disorder_ms` delays each record's arrival by a
    random amount up to that bound, so arrival order differs from event-time order.

    Size: below 2,000 bytes hosts are "lean" (optional shipper metadata dropped, as with
    drop_fields); process starts then take parent fields, hashes, PE metadata and extra
    command-line arguments until the running mean meets `event_bytes`. The lean core is about
    840 bytes a record for the default shape mix: smaller targets give that mean.
    """

    def __init__(
        self,
        n_events: int,
        *,
        seed: int,
        msbuild_share: float = 0.01,
        event_bytes: int = 600,
        disorder_ms: int = 0,
        start_ms: int | None = None,
        events_per_second: float = 500.0,
        n_hosts: int = 200,
        shapes: Mapping[str, float] | None = None,
        duplicate_share: float = 0.0,
        ttl_ms: int = TTL_MS,
    ) -> None:
        if n_events < 0 or not 0.0 <= msbuild_share <= 1.0:
            raise ValueError("n_events must be >= 0 and msbuild_share within [0, 1]")
        self.n_events = n_events
        self.seed = seed
        self.msbuild_share = msbuild_share
        self.event_bytes = event_bytes
        self.disorder_ms = disorder_ms
        self.start_us = (1_717_400_000_000 if start_ms is None else start_ms) * 1000
        self.step_us = max(1, int(1_000_000 / events_per_second))
        self.shapes = dict(DEFAULT_SHAPES if shapes is None else shapes)
        unknown = set(self.shapes) - set(SHAPES)
        if unknown:
            raise ValueError(f"unknown shapes: {sorted(unknown)}")
        self.n_hosts = n_hosts
        self.duplicate_share = duplicate_share
        self.ttl_ms = ttl_ms
        self.expected = Expected()
        self.bytes_total = 0
        self.records_total = 0

    # -- setup

    def _hosts(self, rng: random.Random) -> list[Host]:
        names = list(self.shapes)
        weights = [self.shapes[s] for s in names]
        hosts = []
        for i in range(self.n_hosts):
            shape = rng.choices(names, weights)[0]
            h = make_host(
                shape, f"WS-{i:04d}" if i % 10 else f"SRV-{i:04d}", index=i, seed=self.seed
            )
            h.lean = self.event_bytes < 2000  # full metadata costs ~1.7 kB a record
            populate_host(h, rng, self.start_us - rng.randrange(3600, 86400 * 3) * 1_000_000)
            hosts.append(h)
        return hosts

    # -- main loop

    def __iter__(self) -> Iterator[Record]:
        rng = random.Random(self.seed)
        hosts = self._hosts(rng)
        self.expected = Expected()
        self.bytes_total = 0
        self.records_total = 0
        exp = self.expected
        starts: dict[str, int] = {}  # MSBuild entity id -> start ms
        hits: dict[str, list[int]] = {}  # MSBuild entity id -> qualifying network ms
        scheduled: list[tuple[int, int, tuple[Any, ...]]] = []  # (us, seq, action)
        arrival: list[tuple[int, int, Record]] = []  # (arrival us, seq, record)
        counter = itertools.count()
        target = self.event_bytes
        core_est: dict[str, int] = {}  # shape -> running size of a start without extras
        share = self.msbuild_share
        step = self.step_us
        disorder_us = self.disorder_ms * 1000
        dup = self.duplicate_share
        dumps = orjson.dumps
        random_ = rng.random
        now = self.start_us
        n = self.n_events
        emitted = 0
        total = 0
        n_msb = 0
        bg_kinds = _BG_TABLE
        n_bg = len(bg_kinds)
        n_hosts = len(hosts)

        while emitted < n:
            now += step // 2 + int(random_() * step)
            if scheduled and scheduled[0][0] <= now:
                us, _, action = heapq.heappop(scheduled)
            elif n_msb < share * (emitted + 1):
                us = now
                action = self._msbuild_scenario(rng, hosts, now, scheduled, counter)
            else:
                us = now
                action = bg_kinds[int(random_() * n_bg)](rng, hosts[int(random_() * n_hosts)], us)
            op = action[0]
            p = action[1]
            if op == "start":
                # Size control: extras and command-line arguments fill what the mean lacks.
                shape = p.host.shape
                core = core_est.get(shape, 0)
                budget = target * (emitted + 1) - total - core
                topic, ev, added = _start(p, us, us + 800_000, 0, budget)
                spare = budget - added
                if spare > 60 and core:
                    spare = min(spare, 8 * target) // (1 if _RAW_CMD[shape] else 2)
                    _apply_pad(ev, shape, p, _pad(spare))
                    value = dumps(ev)
                else:
                    value = dumps(ev)
                    c = len(value) - added
                    core_est[shape] = c if not core else (core * 7 + c) // 8
            else:
                topic, ev = _render(action, us)
                value = dumps(ev)
            size = len(value)
            # Expected alerts: bookkeeping for MSBuild.exe events (name is case-insensitive).
            if p.is_msbuild:
                n_msb += 1
                eid = p.entity_id
                ms = us // 1000  # the engine orders at millisecond precision
                if op == "start":
                    starts[eid] = ms
                elif op == "dns" or (op == "net" and action[2] not in LOOPBACK):
                    hits.setdefault(eid, []).append(ms)
                else:
                    hits.setdefault(eid, [])
            emitted += 1
            total += size
            rec = Record(topic, value, (us + (800_000 if op == "start" else 1_200_000)) // 1000)
            if not (dup or disorder_us):  # fast path: no duplicates, no reordering
                yield rec
                continue
            copies = 2 if dup and random_() < dup else 1
            exp.duplicates += copies - 1
            self.bytes_total = total
            self.records_total = emitted + exp.duplicates
            for _ in range(copies):
                if disorder_us:
                    heapq.heappush(arrival, (us + int(random_() * disorder_us), next(counter), rec))
                    while arrival and arrival[0][0] <= us:  # a zero delay pops it at once
                        yield heapq.heappop(arrival)[2]
                else:
                    yield rec
        while arrival:
            yield heapq.heappop(arrival)[2]
        exp.msbuild_events = n_msb
        self.bytes_total = total
        self.records_total = emitted + exp.duplicates
        ttl = self.ttl_ms
        for eid in set(starts) | set(hits):
            s = starts.get(eid)
            if s is not None and any(s <= t <= s + ttl for t in hits.get(eid, ())):
                exp.alerts.add(eid)
            else:
                exp.must_not_alert.add(eid)

    # -- MSBuild scenarios

    def _msbuild_scenario(
        self,
        rng: random.Random,
        hosts: list[Host],
        now: int,
        scheduled: list[tuple[int, int, tuple[Any, ...]]],
        counter: Iterator[int],
    ) -> tuple[Any, ...]:
        """Create one MSBuild scenario: return its first action, schedule the others."""
        kinds = [k for k, _ in _MSB_KINDS]
        kind = rng.choices(kinds, [w for _, w in _MSB_KINDS])[0]
        h = hosts[rng.randrange(len(hosts))]
        user = h.users[rng.randrange(len(h.users))]
        dev = kind in ("loopback_only", "start_only") and rng.random() < 0.7
        if dev:
            image = MSBUILD_VS
            parent = next((p for p in h.procs if p.name == "devenv.exe"), h.procs[0])
            args = rng.choice(_DEV_CMDS).format(u=user)
        else:
            image = MSBUILD_FRAMEWORK
            parent = next((p for p in h.procs if p.name == "powershell.exe"), h.procs[0])
            args = rng.choice(_MSB_CMDS).format(u=user)
        exe = image.path
        r = rng.random()
        if r < 0.1:
            exe = exe.replace("MSBuild.exe", "msbuild.exe")  # `:` is case-insensitive
        elif r < 0.15:
            exe = exe.replace("C:\\Windows", "C:\\windows")
        start_us = now if kind != "network_only" else now - rng.randrange(60, 3600) * 1_000_000
        p = make_proc(h, image, f"{exe} {args}", start_us, parent=parent, user=user, executable=exe)
        sched: list[tuple[int, tuple[Any, ...]]] = []

        def net(delay_us: int, dst: str, port: int = 443) -> None:
            sched.append((now + delay_us, ("net", p, dst, port, 49152 + int(rng.random() * 16383))))

        ext = _EXTERNAL_IPS[int(rng.random() * len(_EXTERNAL_IPS))]
        if kind == "external":
            for k in range(rng.randrange(1, 4)):
                net(
                    rng.randrange(50_000, 240_000_000)
                    if k == 0
                    else rng.randrange(1, 400) * 1_000_000,
                    ext,
                )
        elif kind == "dns":
            sched.append(
                (
                    now + rng.randrange(20_000, 60_000_000),
                    ("dns", p, rng.choice(_EXTERNAL_NAMES), (ext,)),
                )
            )
        elif kind == "loopback_then_external":
            net(rng.randrange(10_000, 5_000_000), rng.choice(("127.0.0.1", "::1")), 8080)
            net(rng.randrange(5_000_000, 200_000_000), ext)
        elif kind == "edge_address":
            net(
                rng.randrange(10_000, 120_000_000), rng.choice(("127.0.0.2", "0.0.0.0", "::")), 8080
            )
        elif kind == "same_ms":
            sched.append((now, ("net", p, ext, 443, rng.randrange(49152, 65535))))
        elif kind == "loopback_only":
            for _ in range(rng.randrange(1, 4)):
                net(
                    rng.randrange(10_000, 240_000_000),
                    rng.choice(_LOOPBACK_ORDERED),
                    rng.choice((8080, 5000, 445)),
                )
        elif kind == "child_connects":
            child_us = now + rng.randrange(500_000, 5_000_000)
            ps = IMAGES["powershell.exe"]
            child = make_proc(
                h, ps, f"{ps.path} -nop -w hidden -enc SQBFAFgA", child_us, parent=p, user=user
            )
            sched.append((child_us, ("start", child)))
            sched.append(
                (
                    child_us + rng.randrange(100_000, 3_000_000),
                    ("net", child, ext, 80, rng.randrange(49152, 65535)),
                )
            )
        elif kind == "late":
            net(self.ttl_ms * 1000 + rng.randrange(30, 300) * 1_000_000, ext)
        elif kind == "network_only":
            return ("net", p, ext, 443, rng.randrange(49152, 65535))
        for us, action in sched:
            # same_ms keeps the start's exact time: the start is rendered first regardless.
            heapq.heappush(scheduled, (us, next(counter), action))
        return ("start", p)


# Shapes whose command line appears once (raw Sysmon data) rather than twice (command_line+args).
_RAW_CMD = {
    "winlogbeat7": False,
    "endpoint": False,
    "winlogbeat8": True,
    "winlogbeat6": True,
    "nxlog": True,
}


def _apply_pad(ev: dict[str, Any], shape: str, p: Proc, pad: str) -> None:
    """Append realistic arguments to a rendered start's command line (and args), and keep
    them on the process so its children's parent fields agree."""
    if not pad:
        return
    p.command_line = f"{p.command_line} {pad}"
    if shape in ("winlogbeat7", "endpoint"):
        proc = ev["process"]
        proc["command_line"] = p.command_line
        proc["args"] = p.command_line.split()
        if "args_count" in proc:
            proc["args_count"] = len(proc["args"])
        return
    ed = ev["winlog"]["event_data"] if shape == "winlogbeat8" else ev.get("event_data", ev)
    ed["CommandLine"] = p.command_line


def _render(action: tuple[Any, ...], us: int) -> tuple[str, dict[str, Any]]:
    op = action[0]
    p = action[1]
    if op == "start":
        return render_process_start(p, us)
    if op == "net":
        return render_network(p, us, action[2], action[3], sport=action[4])
    if op == "dns":
        return render_dns(p, us, action[2], action[3])
    if op == "end":
        return render_process_end(p, us)
    if op == "file":
        return render_file(p, us, action[2])
    if op == "image":
        return render_image_load(p, us, action[2])
    if op == "reg":
        return render_registry(p, us, action[2], action[3])
    raise ValueError(op)


# --------------------------------------------------------------------------- background


def _bg_start(rng: random.Random, h: Host, us: int) -> tuple[Any, ...]:
    name, pname, cmd = _BG_STARTS[int(rng.random() * len(_BG_STARTS))]
    parent = h.by_name.get(pname) or h.procs[0]
    user = "SYSTEM" if pname in ("services.exe", "svchost.exe") else h.users[0]
    p = make_proc(h, IMAGES[name.lower()], cmd, us, parent=parent, user=user)
    if len(h.procs) < 40:
        h.procs.append(p)
    else:
        h.procs[12 + rng.randrange(28)] = p
    return ("start", p)


def _bg_proc(rng: random.Random, h: Host) -> Proc:
    return h.procs[int(rng.random() * len(h.procs))]


def _bg_net(rng: random.Random, h: Host, us: int) -> tuple[Any, ...]:
    p = _bg_proc(rng, h)
    port, _ = _PORTS[int(rng.random() * len(_PORTS))]
    dst = (
        _EXTERNAL_IPS[int(rng.random() * len(_EXTERNAL_IPS))] if port in (443, 80) else "10.20.0.5"
    )
    if rng.random() < 0.03:
        dst = "127.0.0.1"
    return ("net", p, dst, port, 49152 + int(rng.random() * 16383))


def _bg_dns(rng: random.Random, h: Host, us: int) -> tuple[Any, ...]:
    p = _bg_proc(rng, h)
    return ("dns", p, _EXTERNAL_NAMES[int(rng.random() * len(_EXTERNAL_NAMES))],
            (_EXTERNAL_IPS[int(rng.random() * len(_EXTERNAL_IPS))],))  # fmt: skip


def _bg_end(rng: random.Random, h: Host, us: int) -> tuple[Any, ...]:
    return ("end", _bg_proc(rng, h))


def _bg_file(rng: random.Random, h: Host, us: int) -> tuple[Any, ...]:
    if h.shape == "endpoint":
        return _bg_net(rng, h, us)
    p = _bg_proc(rng, h)
    d = _FILE_DIRS[rng.randrange(len(_FILE_DIRS))].format(u=h.users[0])
    return ("file", p, f"{d}f_{rng.randrange(1 << 24):06x}.tmp")


def _bg_image(rng: random.Random, h: Host, us: int) -> tuple[Any, ...]:
    if h.shape == "endpoint":
        return _bg_dns(rng, h, us)
    return ("image", _bg_proc(rng, h), _DLLS[rng.randrange(len(_DLLS))])


def _bg_reg(rng: random.Random, h: Host, us: int) -> tuple[Any, ...]:
    if h.shape == "endpoint":
        return _bg_start(rng, h, us)
    k = _REG_KEYS[rng.randrange(len(_REG_KEYS))].format(sid=h.sid)
    return (
        "reg",
        _bg_proc(rng, h),
        k + f"Value{rng.randrange(100)}",
        f"DWORD (0x{rng.randrange(1 << 16):08x})",
    )


# 20 slots: process start 20%, end 5%, network 35%, DNS 15%, file/image/registry 25%.
_BG_TABLE: list[Any] = (
    [_bg_start] * 4
    + [_bg_end]
    + [_bg_net] * 7
    + [_bg_dns] * 3
    + [_bg_file] * 2
    + [_bg_image] * 2
    + [_bg_reg]
)


# --------------------------------------------------------------------------- oracle


def _ts_ms(value: str) -> int:
    """ms since the epoch of an ISO-8601 'Z' timestamp or a Sysmon 'YYYY-MM-DD HH:MM:SS.fff'."""
    v = value.rstrip("Z").replace("T", " ")
    whole, _, frac = v.partition(".")
    t = time.strptime(whole, "%Y-%m-%d %H:%M:%S")
    return calendar.timegm(t) * 1000 + int((frac + "000")[:3])


def _sysmon_view(
    eid: int, ed: Mapping[str, Any], fallback_ts: str | None
) -> tuple[Any, ...] | None:
    if eid not in (1, 3, 22):
        return None
    image = str(ed.get("Image", ""))
    ts = ed.get("UtcTime") or fallback_ts
    if not ts:
        return None
    kind = "start" if eid == 1 else "network"
    dst = ed.get("DestinationIp") if eid == 3 else None
    return ed.get("ProcessGuid"), image.rsplit("\\", 1)[-1], kind, dst, _ts_ms(str(ts))


def rule_view(doc: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """(entity id, process name, 'start'|'network'|None, destination ip, event ms) of a record
    in any shape of docs/semantics.md (Inputs), or None when the rule cannot use it.

    A deliberately small, independent reading of the shapes (not the engine's) used as a test
    oracle for the generator and the samples."""
    wl = doc.get("winlog")
    if isinstance(wl, dict) and "process" in doc:  # Winlogbeat 7 Sysmon module / Defend-like ECS
        pass
    elif isinstance(wl, dict):  # Winlogbeat 8 raw
        return _sysmon_view(int(wl.get("event_id", 0)), wl.get("event_data", {}), None)
    elif "event_data" in doc and "event_id" in doc:  # Winlogbeat 6 raw
        return _sysmon_view(int(doc["event_id"]), doc["event_data"], None)
    elif "EventID" in doc:  # NXLog flat
        if doc.get("Channel") != _SYSMON_CHANNEL:
            return None
        return _sysmon_view(int(doc["EventID"]), doc, None)
    ev = doc.get("event", {})
    proc = doc.get("process", {})
    cats = ev.get("category", [])
    cats = [cats] if isinstance(cats, str) else cats
    types = ev.get("type", [])
    types = [types] if isinstance(types, str) else types
    if "process" in cats and "start" in types:
        kind = "start"
    elif "network" in cats:
        kind = "network"
    else:
        kind = None
    dst = doc.get("destination", {}).get("ip")
    return proc.get("entity_id"), proc.get("name", ""), kind, dst, _ts_ms(doc["@timestamp"])


def _excluded(dst: Any) -> bool:
    """cidrmatch(destination.ip, "127.0.0.1", "::1"); missing or unparsable never matches."""
    if not isinstance(dst, str):
        return False
    try:
        ip = ipaddress.ip_address(dst)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip in (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


def reference_alerts(values: Iterable[bytes], ttl_ms: int = TTL_MS) -> set[str]:
    """Entity ids the rule alerts on over a set of record values, order-independent: the
    oracle for docs/semantics.md (latest pending start pairs; one alert per start)."""
    per: dict[str, list[tuple[int, int]]] = {}
    for value in set(values):  # exact duplicates are one event
        v = rule_view(orjson.loads(value))
        if v is None or not v[0] or str(v[1]).lower() != "msbuild.exe" or v[2] is None:
            continue
        if v[2] == "network" and _excluded(v[3]):
            continue
        per.setdefault(v[0], []).append((v[4], 0 if v[2] == "start" else 1))
    alerts = set()
    for eid, evs in per.items():
        pending: list[int] = []
        for ms, kind in sorted(evs):  # a start sorts before a network event of the same ms
            if kind == 0:
                pending.append(ms)
            else:
                live = [s for s in pending if s <= ms <= s + ttl_ms]
                if live:
                    alerts.add(eid)
                    pending = [s for s in pending if s > max(live)]
    return alerts


# --------------------------------------------------------------------------- entry points


def iter_records(n_events: int, *, seed: int, **kwargs: Any) -> Synth:
    """Streaming form: iterate for records, then read `.expected` (see `Synth`)."""
    return Synth(n_events, seed=seed, **kwargs)


def generate(
    n_events: int,
    *,
    seed: int,
    msbuild_share: float = 0.01,
    event_bytes: int = 600,
    disorder_ms: int = 0,
    start_ms: int | None = None,
    **kwargs: Any,
) -> Scenario:
    """Materialised form: all records in arrival order plus the exact expected alerts."""
    s = Synth(
        n_events,
        seed=seed,
        msbuild_share=msbuild_share,
        event_bytes=event_bytes,
        disorder_ms=disorder_ms,
        start_ms=start_ms,
        **kwargs,
    )
    records = list(s)
    return Scenario(records=records, expected=s.expected)


def _main() -> None:  # pragma: no cover - manual speed check
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    t0 = time.perf_counter()
    s = Synth(n, seed=1)
    total = 0
    for r in s:
        total += len(r.value)
    dt = time.perf_counter() - t0
    print(
        f"{n} events in {dt:.2f} s = {n / dt:,.0f} events/s,"
        f" mean {total / max(1, s.records_total):.0f} B,"
        f" expected alerts {s.expected.expected_alerts}, msbuild events {s.expected.msbuild_events}"
    )


if __name__ == "__main__":  # pragma: no cover
    _main()
