"""`seqwatch coverage`: Kibana's schedule emulated on constructed recordings, one reason each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner
from engine_helpers import T0, iso, net, start

from app.cli.coverage import coverage
from tests.helpers import ROOT

MIN = 60_000
RUN = T0 - T0 % (5 * MIN) + 5 * MIN
"""A scheduled run (every 5 minutes from the epoch): 2023-11-14T22:15:00Z."""


def _write(path: Path, docs: list[dict[str, Any]]) -> str:
    path.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    return str(path)


def _pair(guid: str, t_start: int, t_net: int) -> list[dict[str, Any]]:
    return [start(guid=guid, t=t_start), net(guid=guid, t=t_net)]


def _report(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(coverage, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return orjson.loads(result.output.strip().splitlines()[-1])


def test_a_pair_no_window_holds_is_missed_for_window(tmp_path: Path) -> None:
    # 22:15:30 and 22:24:00: the 22:20 run sees the start, the 22:25 run [22:16, 22:25]
    # only the connection. 8.5 minutes apart: within the stream's 9-minute TTL.
    path = _write(tmp_path / "r.ndjson", _pair("{w}", RUN + MIN // 2, RUN + 9 * MIN))
    with open(path, "ab") as f:
        f.write(b'not json\n{"no": "time"}\n')  # counted, read by neither side
    data = _report(path)
    assert (data["records"], data["unreadable"]) == (4, 2)
    assert "unreadable 2" in CliRunner().invoke(coverage, [path]).output
    assert data["stream"]["alerts"] == 1
    assert data["schedule"]["alerts"] == 0
    assert [m["reason"] for m in data["missed"]] == ["window"]
    assert data["missed"][0]["entity_id"] == "{w}"
    # 22:15 ... 22:35: the last is the first whose window begins after the last event.
    assert data["schedule"]["runs"] == 5


def test_a_long_pair_is_caught_when_a_window_happens_to_hold_it(tmp_path: Path) -> None:
    # 22:16:10 and 22:24:50, 8 min 40 s apart: the 22:25 run's window [22:16, 22:25] has both.
    data = _report(
        _write(tmp_path / "r.ndjson", _pair("{l}", RUN + 70_000, RUN + 9 * MIN + 50_000))
    )
    assert (data["stream"]["alerts"], data["schedule"]["alerts"], data["both"]) == (1, 1, 1)
    assert data["missed"] == [] and data["only_schedule"] == []
    assert data["schedule"]["delay_s"]["max"] == 10.0  # found at 22:25:00
    assert data["stream"]["delay_s"]["max"] == 0.2  # the worker's latency (--stream-latency)


def test_an_event_indexed_after_every_window_that_held_it_is_missed_for_ingest_delay(
    tmp_path: Path,
) -> None:
    late = net(guid="{i}", t=RUN + 2 * MIN, **{"event.ingested": iso(RUN + 12 * MIN)})
    late["event"]["ingested"] = late.pop("event.ingested")
    docs = [start(guid="{i}", t=RUN + MIN), late]
    data = _report(_write(tmp_path / "r.ndjson", docs))
    assert [m["reason"] for m in data["missed"]] == ["ingest_delay"]
    assert data["stream"]["delay_s"]["max"] == 600.2  # alerts when it arrives, 10 min late
    # A fixed delay instead of the field: 2 minutes, and every run sees it in time.
    fixed = _report(str(tmp_path / "r.ndjson"), "--ingest-delay", "2m")
    assert fixed["missed"] == [] and fixed["both"] == 1


def test_a_short_pair_cut_by_the_indexing_delay_is_missed_for_ingest_delay(
    tmp_path: Path,
) -> None:
    # 3 min 50 s apart, less than the 4 minutes two windows overlap, so some window holds
    # both times (the 22:25 run's); indexed 30 s late, the connection was not there yet,
    # and the 22:30 run's window [22:21, 22:30] has lost the start.
    docs = _pair("{s}", RUN + 5 * MIN + 55_000, RUN + 9 * MIN + 45_000)
    path = _write(tmp_path / "r.ndjson", docs)
    assert _report(path)["both"] == 1
    late = _report(path, "--ingest-delay", "30s")
    assert [m["reason"] for m in late["missed"]] == ["ingest_delay"]


def test_a_run_capped_at_max_signals_holds_back_the_latest_sequences(tmp_path: Path) -> None:
    docs = []
    for i in range(150):  # all within [22:15:10, 22:15:50]: only the 22:20 run holds them
        docs += _pair(f"{{c{i:03}}}", RUN + 10_000 + i * 100, RUN + 30_000 + i * 100)
    path = _write(tmp_path / "r.ndjson", docs)
    data = _report(path, "--max-signals", "100", "--alert-cap", "0")
    assert (data["stream"]["alerts"], data["schedule"]["alerts"]) == (150, 100)
    assert data["missed_by_reason"] == {"window": 0, "ingest_delay": 0, "max_signals": 50}
    # Elasticsearch completes sequences in the order of their last event: the last 50 wait.
    assert sorted(m["entity_id"] for m in data["missed"]) == [
        f"{{c{i:03}}}" for i in range(100, 150)
    ]
    # The worker's own cap (100 per 5 minutes of event time by default) is reported too.
    capped = _report(path, "--max-signals", "100")
    assert (capped["stream"]["alerts"], capped["stream"]["held_by_cap"]) == (100, 50)


def test_delayed_runs_leave_gaps_no_later_run_fills(tmp_path: Path) -> None:
    # Runs 5 minutes late, each due 5 minutes after the last *started*: every 10 minutes
    # with 9-minute windows, so [22:20, 22:21] is never searched.
    path = _write(
        tmp_path / "r.ndjson", _pair("{d}", RUN + 5 * MIN + 10_000, RUN + 5 * MIN + 20_000)
    )
    on_time = _report(path, "--first-run", iso(RUN))
    assert on_time["both"] == 1
    late = _report(path, "--first-run", iso(RUN), "--run-delay", "5m")
    assert [m["reason"] for m in late["missed"]] == ["window"]


def test_the_bundled_samples_are_found_by_both(tmp_path: Path) -> None:
    samples = sorted(str(p) for p in (ROOT / "topics" / "samples").glob("*.ndjson"))
    expected = orjson.loads((ROOT / "topics" / "samples" / "EXPECTED.json").read_bytes())
    picture = tmp_path / "coverage.html"
    data = _report(*samples, "--plot", str(picture))
    assert data["stream"]["alerts"] == len(expected["alerts"]) == data["both"]
    assert data["missed"] == [] and data["only_schedule"] == []
    page = picture.read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page


def _seqwatch(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", "from app.cli.main import main; main()", *args],
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )


def test_a_missing_file_or_a_bad_rule_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = _seqwatch("coverage", str(tmp_path / "nope.ndjson"))
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1 and "not found" in err
    rule = tmp_path / "bad.toml"
    rule.write_text('[rule]\nrule_id = "r"\nname = "n"\nquery = "process where nosuch(a)"\n')
    data = _write(tmp_path / "r.ndjson", _pair("{b}", RUN, RUN + 1_000))
    proc = _seqwatch("coverage", data, "--rule", str(rule))
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1 and "nosuch" in err
    proc = _seqwatch("coverage", data, "--plot", str(tmp_path / "x.png"))
    assert proc.returncode == 2 and ".html or .svg" in proc.stderr.decode()


def test_several_rules_each_run_on_their_own_schedule(tmp_path: Path) -> None:
    samples = sorted(str(p) for p in (ROOT / "topics" / "samples").glob("*.ndjson"))
    alone = _report(*samples)
    together = _report(*samples, "--rules", str(ROOT / "app" / "rules"))
    assert len(together["rules"]) == 2  # MSBuild and InstallUtil (a copy of MSBuild skipped)
    assert together["schedule"]["runs"] == 2 * alone["schedule"]["runs"]
    assert (together["both"], together["missed"]) == (alone["both"], alone["missed"])


def test_a_pair_longer_than_the_stream_ttl_is_only_the_schedule_s_with_its_reason(
    tmp_path: Path,
) -> None:
    # 6 minutes apart: the 22:25 run's window holds both; a stream with a 5-minute TTL
    # has let the start go.
    path = _write(tmp_path / "r.ndjson", _pair("{t}", RUN + MIN, RUN + 7 * MIN))
    data = _report(path, "--ttl", "5m")
    assert (data["stream"]["alerts"], data["schedule"]["alerts"]) == (0, 1)
    assert [o["reason"] for o in data["only_schedule"]] == ["ttl"]
    assert "more than the stream's --ttl 5m" in data["only_schedule"][0]["detail"]
