"""Hosts and their processes (entity ids as each shipper forms them)."""

from __future__ import annotations

import base64
import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from devtools.synth.catalog import _LONG_LIVED, _USERS, IMAGES, Image

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
