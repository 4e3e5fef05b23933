"""Build the recorded-style sample topics (NDJSON per input topic) and their expected alerts.

Why: no public recording of a real MSBuild.exe start followed by an MSBuild.exe network
connection exists, so the alerting scenarios are built here from the shapes of docs/semantics.md
(Inputs) (with devtools.synth's renderers), next to verbatim excerpts of real shipper output from
OTRF Security-Datasets (MIT). Re-running this script reproduces every output byte for byte:

    .venv/bin/python topics/samples/build.py [DATA_DIR]

DATA_DIR defaults to tests/data (the recordings, with their licences).
"""

from __future__ import annotations

import io
import json
import random
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from devtools import synth  # noqa: E402
from devtools.synth import (  # noqa: E402
    IMAGES,
    MSBUILD_FRAMEWORK,
    MSBUILD_VS,
    RULE,
    TOPIC_NETWORK,
    TOPIC_PROCESS,
    TOPIC_WINLOGBEAT,
    Host,
    Proc,
    make_host,
    make_proc,
    populate_host,
    render_dns,
    render_image_load,
    render_network,
    render_process_start,
)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
FILES = {
    TOPIC_WINLOGBEAT: "winlogbeat.ndjson",
    TOPIC_PROCESS: "logs-endpoint.events.process.ndjson",
    TOPIC_NETWORK: "logs-endpoint.events.network.ndjson",
}
RDP_TAR = "security-datasets/empire_enable_rdp.tar.gz"
MSBUILD_ZIP = "security-datasets/empire_msbuild_dcerpc_wmi_smb.zip"
# Empire's MSBuild on WORKSTATION6 and its child powershell (the one that connects out).
EMPIRE_MSBUILD = "{d273d0f0-cc0c-5f67-0b08-000000000800}"
EMPIRE_CHILD = "{d273d0f0-cc10-5f67-1008-000000000800}"
# Lines of the NXLog recording kept verbatim (1-based): the MSBuild start with the svchost
# RPC/SMB traffic before it, the csc.exe compilations it runs, the powershell child's start and
# its connection to 10.10.10.5:80 (carrying an earlier UtcTime than its start), its DNS query.
EMPIRE_WINDOWS = [
    (1259, 1266),
    (1468, 1468),
    (1574, 1574),
    (1862, 1866),
    (2544, 2548),
    (2562, 2562),
]
WMI_CMD = "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding"
T0 = int(datetime(2024, 6, 11, 9, 0, 0, tzinfo=UTC).timestamp()) * 1_000_000


def at(hms: str) -> int:
    """Event time (µs) of 'HH:MM:SS.ffffff' on the synthetic scenarios' day, 2024-06-11 UTC."""
    t = datetime.strptime(f"2024-06-11 {hms}", "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    return int(t.timestamp()) * 1_000_000 + t.microsecond


@dataclass
class Line:
    """One output record: where it goes, when it arrives (orders the file), and a label."""

    topic: str
    arrival_us: int
    value: bytes
    label: str = ""


@dataclass
class Scenario:
    id: str
    title: str
    shape: str
    entity_id: str
    alert: bool
    why: str
    labels: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- real excerpts


def read_rdp_lines(data: Path) -> list[str]:
    """Winlogbeat 6.7 lines from empire_enable_rdp.tar.gz (the archive's gzip trailer is cut:
    read the member, which is complete, and stop there)."""
    with tarfile.open(data / RDP_TAR, "r:gz") as tf:
        member = tf.next()
        assert member is not None
        fh = tf.extractfile(member)
        assert fh is not None
        raw = fh.read()
    return raw.decode("utf-8").splitlines()


def pick_rdp(lines: list[str]) -> list[tuple[int, str]]:
    """Every Sysmon process start, the connections of the two same-GUID svchost start/connect
    pairs, the first records of the file, and a sample of the other event types."""
    events = [json.loads(x) for x in lines]
    starts = {
        e["event_data"]["ProcessGuid"]
        for e in events
        if e.get("source_name") == "Microsoft-Windows-Sysmon" and e.get("event_id") == 1
    }
    out = []
    for no, (line, e) in enumerate(zip(lines, events, strict=True), 1):
        sysmon = e.get("source_name") == "Microsoft-Windows-Sysmon"
        eid = e.get("event_id")
        keep = (
            no <= 4
            or (sysmon and eid == 1)
            or (sysmon and eid == 3 and e["event_data"].get("ProcessGuid") in starts)
            or (eid in (7, 10, 12, 13, 4688, 5156) and no % 97 == 0)
        )
        if keep:
            out.append((no, line))
    return out


def read_empire(data: Path) -> list[tuple[int, str]]:
    with zipfile.ZipFile(data / MSBUILD_ZIP) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".json"))
        lines = io.TextIOWrapper(zf.open(name), encoding="utf-8").read().splitlines()
    out = [(no, lines[no - 1]) for a, b in EMPIRE_WINDOWS for no in range(a, b + 1)]
    by_no = dict(out)
    assert EMPIRE_MSBUILD in by_no[1263] and '"EventID":1,' in by_no[1263], "MSBuild start moved"
    assert EMPIRE_CHILD in by_no[2546] and "10.10.10.5" in by_no[2546], "child connection moved"
    return out


# --------------------------------------------------------------------------- synthetic scenarios


class Builder:
    """Collects rendered records and the scenario table."""

    def __init__(self) -> None:
        self.rng = random.Random(20240611)
        self.lines: list[Line] = []
        self.scenarios: list[Scenario] = []
        self.must_not_alert_extra: list[str] = []

    def host(self, shape: str, name: str, index: int) -> Host:
        h = make_host(shape, name, index=index, seed=7)
        populate_host(h, self.rng, T0 - (86_400 + index * 3_607) * 1_000_000)
        return h

    def add(
        self,
        rendered: tuple[str, dict[str, Any]],
        us: int,
        label: str = "",
        *,
        ship_us: int | None = None,
    ) -> bytes:
        topic, ev = rendered
        value = orjson.dumps(ev)
        self.lines.append(Line(topic, us + 1_000_000 if ship_us is None else ship_us, value, label))
        return value

    def start(
        self, p: Proc, label: str = "", *, ship_us: int | None = None, tick: int = 0
    ) -> bytes:
        return self.add(
            render_process_start(p, p.start_us, tick=tick), p.start_us, label, ship_us=ship_us
        )

    def noise(self, h: Host, t_from: int, t_to: int, n: int) -> None:
        for _ in range(n):
            us = t_from + int(self.rng.random() * (t_to - t_from))
            self.add(synth.background_event(self.rng, h, us), us)


def build_synthetic(b: Builder) -> None:
    rng = b.rng
    fin = b.host("winlogbeat7", "WS-FIN-07", 11)
    dev = b.host("winlogbeat7", "DEV-LT-12", 12)
    hr = b.host("winlogbeat7", "WS-HR-03", 13)
    ops = b.host("winlogbeat8", "WS-OPS-21", 14)
    bld = b.host("winlogbeat8", "BLD-SRV-02", 15)
    eng = b.host("endpoint", "ws-eng-04", 16)
    mkt = b.host("endpoint", "ws-mkt-09", 17)
    fw = MSBUILD_FRAMEWORK.path
    cmd_img = IMAGES["cmd.exe"]

    # S1 dropper: Outlook attachment -> cmd -> MSBuild payload.xml -> DNS + HTTPS out (alert).
    t = at("09:02:11.204000")
    cmd = make_proc(
        fin, cmd_img, f"cmd.exe /c {fw} C:\\Users\\Public\\payload.xml", t,
        parent=fin.by_name["OUTLOOK.EXE"], user="jdoe",
    )  # fmt: skip
    msb = make_proc(
        fin, MSBUILD_FRAMEWORK, f"{fw} C:\\Users\\Public\\payload.xml", t + 153_000,
        parent=cmd, user="jdoe",
    )  # fmt: skip
    b.start(cmd)
    dup = b.start(msb, "S1-start")
    dlls = (
        "C:\\Windows\\System32\\mscoree.dll",
        "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\clr.dll",
    )
    for k, dll in enumerate(dlls):
        us = msb.start_us + 40_000 + k * 9_000
        b.add(render_image_load(msb, us, dll), us)
    us = msb.start_us + 2_410_000
    b.add(render_dns(msb, us, "cdn.contoso-updates.net", ("185.220.101.47",)), us, "S1-dns")
    for k, us in enumerate((msb.start_us + 2_512_000, msb.start_us + 63_018_000)):
        b.add(
            render_network(msb, us, "185.220.101.47", 443, sport=51733 + k, pname="https"),
            us,
            f"S1-net{k + 1}",
        )
    # The shipper retried a batch: an exact duplicate of the MSBuild start arrives later.
    b.lines.append(Line(TOPIC_WINLOGBEAT, msb.start_us + 3_100_000, dup, "S1-start-duplicate"))
    b.scenarios.append(
        Scenario(
            "S1", "Dropper: MSBuild.exe payload.xml connects out", "winlogbeat7",
            msb.entity_id, True,
            "Start, then a DNS query and two connections to 185.220.101.47:443 within 61 s; one "
            "alert (the first qualifying event consumes the start). The start record is "
            "delivered twice (at-least-once): still one alert.",
            ["S1-start", "S1-start-duplicate", "S1-dns", "S1-net1", "S1-net2"],
        )
    )  # fmt: skip
    b.must_not_alert_extra.append(cmd.entity_id)

    # S2 developer build: Visual Studio's MSBuild node talks to 127.0.0.1 and ::1 only.
    t = at("09:05:40.018000")
    node = make_proc(
        dev, MSBUILD_VS, f'"{MSBUILD_VS.path}" /nologo /nodemode:1 /nodeReuse:true /low:false',
        t, parent=dev.by_name["devenv.exe"], user=dev.users[0],
    )  # fmt: skip
    b.start(node, "S2-start")
    for k, (dt, dst, port) in enumerate(
        (
            (1_204_000, "127.0.0.1", 50211),
            (1_311_000, "::1", 50212),
            (30_870_000, "127.0.0.1", 50211),
        )
    ):
        b.add(render_network(node, t + dt, dst, port, sport=50300 + k), t + dt, f"S2-net{k + 1}")
    dotnet = make_proc(
        dev, IMAGES["dotnet.exe"],
        '"C:\\Program Files\\dotnet\\dotnet.exe" "C:\\Program Files\\dotnet\\sdk\\8.0.204\\'
        'MSBuild.dll" -maxcpucount -verbosity:m -restore', at("09:06:10.500000"),
        parent=dev.by_name["devenv.exe"], user=dev.users[0],
    )  # fmt: skip
    b.start(dotnet, "S2b-start")
    us = dotnet.start_us + 2_003_000
    b.add(
        render_network(dotnet, us, "152.199.4.184", 443, sport=50420, dname="api.nuget.org"),
        us,
        "S2b-net",
    )
    b.scenarios.append(
        Scenario(
            "S2", "Developer MSBuild node: loopback only", "winlogbeat7", node.entity_id, False,
            "Connections to 127.0.0.1 and ::1 are excluded by cidrmatch: no alert.",
            ["S2-start", "S2-net1", "S2-net2", "S2-net3"],
        )
    )  # fmt: skip
    b.scenarios.append(
        Scenario(
            "S2b", "dotnet.exe running MSBuild.dll connects to nuget", "winlogbeat7",
            dotnet.entity_id, False,
            "The process is dotnet.exe, not MSBuild.exe (MSBuild.dll only appears in the "
            "command line): no alert.",
            ["S2b-start", "S2b-net"],
        )
    )  # fmt: skip

    # S3 DNS only: Sysmon 22 of MSBuild, no destination.ip -> passes `not cidrmatch` (alert).
    t = at("09:08:03.771000")
    wmi = make_proc(
        hr, IMAGES["wmiprvse.exe"], WMI_CMD,
        t - 2_000_000, parent=hr.by_name["services.exe"], user="NETWORK SERVICE",
    )  # fmt: skip
    msb3 = make_proc(
        hr, MSBUILD_FRAMEWORK, f"{fw} C:\\Users\\Public\\Documents\\build.xml", t,
        parent=wmi, user=hr.users[0], integrity="High",
    )  # fmt: skip
    b.start(wmi)
    b.start(msb3, "S3-start")
    us = t + 1_044_000
    b.add(render_dns(msb3, us, "raw.githubusercontent.com", ("185.199.108.133",)), us, "S3-dns")
    b.scenarios.append(
        Scenario(
            "S3", "MSBuild DNS query only (Sysmon 22)", "winlogbeat7", msb3.entity_id, True,
            "A DNS event has no destination.ip; Elasticsearch runs `not cidrmatch` as a "
            "must-not filter, so it matches and completes the sequence (docs/semantics.md).",
            ["S3-start", "S3-dns"],
        )
    )  # fmt: skip

    # S4 Winlogbeat 8 raw Sysmon pair (alert).
    t = at("09:11:26.402000")
    cmd4 = make_proc(
        ops, cmd_img, f"cmd.exe /Q /c {fw} C:\\Windows\\Temp\\t1127.csproj", t - 61_000,
        parent=ops.by_name["explorer.exe"], user=ops.users[0],
    )  # fmt: skip
    msb4 = make_proc(
        ops, MSBUILD_FRAMEWORK, f"{fw} C:\\Windows\\Temp\\t1127.csproj", t, parent=cmd4,
        user=ops.users[0],
    )  # fmt: skip
    b.start(cmd4)
    b.start(msb4, "S4-start")
    us = t + 4_877_000
    b.add(render_network(msb4, us, "45.77.65.211", 8443, sport=52018), us, "S4-net")
    b.scenarios.append(
        Scenario(
            "S4", "Winlogbeat 8 raw Sysmon 1 + 3", "winlogbeat8", msb4.entity_id, True,
            "Raw winlog.event_data only (event_id \"1\"/\"3\" as strings); the consumer maps "
            "ProcessGuid, Image, DestinationIp and UtcTime itself.",
            ["S4-start", "S4-net"],
        )
    )  # fmt: skip
    b.must_not_alert_extra.append(cmd4.entity_id)

    # S5 build server: the connection comes 9 min 45 s after the start (no alert).
    t = at("09:12:00.250000")
    msb5 = make_proc(
        bld, MSBUILD_VS, f'"{MSBUILD_VS.path}" C:\\agent\\_work\\3\\s\\Contoso.sln /t:Build /m',
        t, parent=bld.by_name["powershell.exe"], user="build",
    )  # fmt: skip
    b.start(msb5, "S5-start")
    us = t + 585_650_000
    b.add(render_network(msb5, us, "140.82.121.4", 443, sport=53007), us, "S5-net")
    b.scenarios.append(
        Scenario(
            "S5", "MSBuild start and connection 9 min 45.65 s apart", "winlogbeat8",
            msb5.entity_id, False,
            "Further apart than the 9-minute window (Kibana searches now-9m): no alert.",
            ["S5-start", "S5-net"],
        )
    )  # fmt: skip

    # S6 Elastic Defend: the network record arrives ~41 s before the process start (alert).
    t = at("09:15:07.123456")
    wmi6 = make_proc(
        eng, IMAGES["wmiprvse.exe"], WMI_CMD,
        t - 1_900_000, parent=eng.by_name["services.exe"], user="NETWORK SERVICE",
    )  # fmt: skip
    msb6 = make_proc(
        eng, MSBUILD_FRAMEWORK, f"{fw} C:\\Windows\\Tasks\\pshell.xml", t, parent=wmi6,
        user=eng.users[0], integrity="High",
    )  # fmt: skip
    b.start(wmi6)
    b.start(msb6, "S6-start", ship_us=t + 44_600_000, tick=7)
    us = at("09:15:09.881234")
    b.add(render_dns(msb6, us - 120_000, "c2.fabrikam-cdn.com", tick=5), us - 120_000, "S6-dns",
          ship_us=us + 2_000_000)  # fmt: skip
    b.add(render_network(msb6, us, "104.21.55.3", 443, sport=49822, tick=5), us, "S6-net",
          ship_us=us + 2_000_000)  # fmt: skip
    us2 = us + 30_004_000
    b.add(
        render_network(msb6, us2, "104.21.55.3", 443, sport=49822, action="disconnect_received"),
        us2,
        "S6-disconnect",
    )
    b.scenarios.append(
        Scenario(
            "S6", "Elastic Defend start + connection_attempted across two topics", "endpoint",
            msb6.entity_id, True,
            "The start's @timestamp is earlier, but its record (process topic) is shipped ~41 s "
            "after the lookup_requested and connection_attempted records (network topic): "
            "replay the network file first, or follow arrival_order in EXPECTED.json.",
            ["S6-start", "S6-dns", "S6-net", "S6-disconnect"],
        )
    )  # fmt: skip

    # Background noise on every synthetic host. The Defend hosts' noise stays within 09:12-09:17
    # so that replaying the network file before the process file delays S6's start by ~2 min
    # of event time at most (a late record, still within the 9-minute TTL).
    for h, n in ((fin, 30), (dev, 30), (hr, 22), (ops, 24), (bld, 20)):
        b.noise(h, at("09:00:00.000000"), at("09:25:00.000000"), n)
    for h, n in ((eng, 34), (mkt, 30)):
        b.noise(h, at("09:12:00.000000"), at("09:17:00.000000"), n)
    del rng


# --------------------------------------------------------------------------- output


def main(argv: list[str]) -> None:
    data = Path(argv[1]) if len(argv) > 1 else DEFAULT_DATA
    out_dir = HERE
    b = Builder()
    build_synthetic(b)

    per_topic: dict[str, list[tuple[bytes, str]]] = {t: [] for t in FILES}
    # Real excerpts first (2019, then 2020), in their recorded order, then the 2024 scenarios.
    rdp = pick_rdp(read_rdp_lines(data))
    for no, line in rdp:
        per_topic[TOPIC_WINLOGBEAT].append((line.encode(), f"rdp:{no}"))
    empire = read_empire(data)
    for no, line in empire:
        per_topic[TOPIC_WINLOGBEAT].append((line.encode(), f"empire:{no}"))
    order = sorted(range(len(b.lines)), key=lambda i: (b.lines[i].arrival_us, i))
    for i in order:
        ln = b.lines[i]
        per_topic[ln.topic].append((ln.value, ln.label))

    where: dict[str, str] = {}
    arrival: list[tuple[int, int, str]] = []
    for topic, rows in per_topic.items():
        fname = FILES[topic]
        with open(out_dir / fname, "wb") as fh:
            for no, (value, label) in enumerate(rows, 1):
                fh.write(value + b"\n")
                if label and not label.startswith("rdp:"):
                    where[label] = f"{fname}:{no}"
    # Arrival order across files: excerpts first, then synthetic records by shipping time.
    ex = len(rdp) + len(empire)
    arrival_order = [f"{FILES[TOPIC_WINLOGBEAT]}:{k}" for k in range(1, ex + 1)]
    counters = {t: (ex if t == TOPIC_WINLOGBEAT else 0) for t in FILES}
    for i in order:
        ln = b.lines[i]
        counters[ln.topic] += 1
        arrival.append((ln.arrival_us, i, f"{FILES[ln.topic]}:{counters[ln.topic]}"))
    arrival_order += [x[2] for x in arrival]

    empire_lines = {no: where[f"empire:{no}"] for no, _ in empire}
    b.scenarios.append(
        Scenario(
            "S7", "Real Empire MSBuild near miss (NXLog, security-datasets)", "nxlog",
            EMPIRE_MSBUILD, False,
            "MSBuild.exe starts (pshell.xml) but never connects; its child powershell.exe "
            f"{EMPIRE_CHILD} connects to 10.10.10.5:80 with a UtcTime earlier than its own "
            "start: a different process, no alert. Its csc.exe children compile the payload.",
            ["empire:1263", "empire:1468", "empire:1574", "empire:1864"],
        )
    )  # fmt: skip
    b.scenarios.append(
        Scenario(
            "S7b", "Real Empire: MSBuild's child powershell.exe connects", "nxlog",
            EMPIRE_CHILD, False,
            "powershell.exe (parent MSBuild.exe) connects to 10.10.10.5:80 and queries DNS: the "
            "rule wants MSBuild.exe itself, no alert.",
            ["empire:1864", "empire:2546", "empire:2562"],
        )
    )  # fmt: skip
    alerts = [s for s in b.scenarios if s.alert]
    not_alert = [s.entity_id for s in b.scenarios if not s.alert]
    not_alert += b.must_not_alert_extra
    expected = {
        "rule": RULE,
        "alerts": [{"process.entity_id": s.entity_id, "rule": RULE} for s in alerts],
        "must_not_alert": not_alert,
        "scenarios": [
            {
                "id": s.id,
                "title": s.title,
                "shape": s.shape,
                "process.entity_id": s.entity_id,
                "alert": s.alert,
                "lines": [where[x] for x in s.labels],
                "why": s.why,
            }
            for s in b.scenarios
        ],
        "arrival_order": arrival_order,
    }
    (out_dir / "EXPECTED.json").write_bytes(
        orjson.dumps(expected, option=orjson.OPT_INDENT_2) + b"\n"
    )
    (out_dir / "LICENSE-security-datasets.txt").write_bytes(
        (data / "security-datasets" / "LICENSE").read_bytes()
    )
    counts = {FILES[t]: len(rows) for t, rows in per_topic.items()}
    (out_dir / "README.md").write_text(
        readme(b.scenarios, counts, rdp, empire_lines, len(b.lines)), encoding="utf-8"
    )


def readme(
    scenarios: list[Scenario],
    counts: dict[str, int],
    rdp: list[tuple[int, str]],
    empire_lines: dict[int, str],
    n_synth: int,
) -> str:
    rows = "\n".join(
        f"| {s.id} | {s.title} | {s.shape} | `{s.entity_id}` | {'**yes**' if s.alert else 'no'} |"
        for s in scenarios
    )
    files = "\n".join(f"| `{f}` | {n} |" for f, n in counts.items())
    empire_map = ", ".join(f"{no} → `{loc}`" for no, loc in empire_lines.items())
    return f"""# Sample topics

Recorded-style shipper output, one NDJSON file per input topic (one Kafka record value per
line), for `seqwatch detect`, `seqwatch replay` and the tests. **Generated** by `build.py` from
`tests/data` and `devtools/synth`'s renderers; do not edit by hand, re-run:

    .venv/bin/python topics/samples/build.py [DATA_DIR]

| file | lines |
|---|---|
{files}

`EXPECTED.json` lists the alerts the rule "MsBuild Making Network Connections" must produce
(`alerts`: one object per `process.entity_id`), the entity ids that must not alert
(`must_not_alert`), every scenario with its `file:line` records, and `arrival_order`: all
lines of the three files as `file:line` in the order the shippers delivered them (excerpts
first, then the synthetic records by shipping time). Following `arrival_order` keeps every
record within the default 60 s allowed lateness. Replaying whole files one after another
instead (e.g. the network file, then the process file) makes S6's start about 2 minutes of
event time late: still processed, still within the 9-minute TTL, counted as late.

## Scenarios

| id | scenario | shape | process.entity_id | alert |
|---|---|---|---|---|
{rows}

Details (the `lines` and reasons are in `EXPECTED.json`):
{chr(10).join(f"- **{s.id}** {s.why}" for s in scenarios)}

Also not alerting, listed in `must_not_alert`: the cmd.exe parents of S1 and S4 (their
command lines name MSBuild.exe, their process is not).

## Where each part comes from

- `winlogbeat.ndjson` lines 1-{len(rdp)}: **real Winlogbeat 6.7 records** as shipped to Kafka
  (topic `winlogbeat`), verbatim lines of `empire_enable_rdp_2019-05-18203650.json` in
  `security-datasets/empire_enable_rdp.tar.gz` (OTRF Security-Datasets, SDWIN-190518203650,
  MIT): every Sysmon process start, the connections of the two same-GUID svchost.exe
  start/connect pairs (their Sysmon UtcTime is 11 days before the start: clock skew on
  HR001), the first records and a sample of other events. Original lines:
  {", ".join(str(no) for no, _ in rdp)}. No MSBuild: nothing alerts.
- `winlogbeat.ndjson` next {len(empire_lines)} lines: **real NXLog records** (im_msvistalog via
  Logstash to Kafka; the security-datasets pipeline used topic `winlogbeat`), verbatim lines of
  `empire_msbuild_dcerpc_wmi_smb_2020-09-20173857.json` in
  `security-datasets/empire_msbuild_dcerpc_wmi_smb.zip` (SDWIN-190518213907, MIT), original
  line → sample line: {empire_map}. Scenarios S7 and S7b.
- Everything else ({n_synth} records, 2024-06-11 09:00-09:25 UTC) is **synthetic**, built by
  `build.py` with `devtools.synth` in the shapes of docs/semantics.md (Inputs): Winlogbeat
  7.10 with its Sysmon module (ECS), Winlogbeat 8.13 raw (`winlog.*`), Elastic Defend 8.13
  via Elastic Agent's Kafka output (7 fractional digits, base64 entity ids), with background
  noise
  (svchost, chrome, edge, outlook, powershell, ... starts, connections, DNS, file, image-load
  and registry events). No public recording of a real MSBuild.exe start followed by an
  MSBuild.exe connection exists.

## Licences

The security-datasets excerpts are under the MIT licence of OTRF Security-Datasets, kept
beside them as `LICENSE-security-datasets.txt`. The synthetic records are this project's.
"""


if __name__ == "__main__":
    main(sys.argv)
