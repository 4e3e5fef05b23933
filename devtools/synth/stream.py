"""The stream: hosts' background activity, MSBuild scenarios, disorder and duplicates."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from devtools.synth.catalog import (
    _BG_STARTS,
    _DLLS,
    _EXTERNAL_IPS,
    _EXTERNAL_NAMES,
    _FILE_DIRS,
    _PORTS,
    _REG_KEYS,
    IMAGES,
    MSBUILD_FRAMEWORK,
    MSBUILD_VS,
    _pad,
)
from devtools.synth.common import _LOOPBACK_ORDERED, DEFAULT_SHAPES, LOOPBACK, RULE, SHAPES, TTL_MS
from devtools.synth.hosts import Host, Proc, make_host, make_proc, populate_host
from devtools.synth.render import (
    _start,
    render_dns,
    render_file,
    render_image_load,
    render_network,
    render_process_end,
    render_process_start,
    render_registry,
)

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


def background_event(rng: random.Random, h: Host, us: int) -> tuple[str, dict[str, Any]]:
    """One background (non-MSBuild.exe) event of a populated host at event time us."""
    table = _BG_TABLE
    return _render(table[int(rng.random() * len(table))](rng, h, us), us)
