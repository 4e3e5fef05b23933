"""`seqwatch detect`: alerts on stdout, summary on stderr, exit codes."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from engine_helpers import REPO, RULE_INSTALLUTIL, T0, net, start

from app.cli.detect import detect


def _write(path: Path, docs: list[dict | bytes]) -> Path:
    path.write_bytes(
        b"".join((d if isinstance(d, bytes) else orjson.dumps(d)) + b"\n" for d in docs)
    )
    return path


def _alerts(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_detect_prints_alerts_and_a_summary(tmp_path: Path) -> None:
    data = _write(
        tmp_path / "events.ndjson",
        [start(), b"", b"garbage", b"[1]", net(name="chrome.exe"), net(), net(t=T0 + 9)],
    )
    result = CliRunner().invoke(detect, [str(data)])
    assert result.exit_code == 0, result.output
    (alert,) = _alerts(result.stdout)
    assert alert["events"][0]["topic"] == "events.ndjson"
    assert [e["offset"] for e in alert["events"]] == [1, 6]  # 1-based line numbers
    assert "events read 6" in result.stderr
    assert "rejected 2 (not_json=1, not_object=1)" in result.stderr
    assert "alerts 1" in result.stderr
    assert "events/s" in result.stderr


def test_detect_reads_stdin_gzip_and_several_files(tmp_path: Path) -> None:
    first = _write(tmp_path / "process.ndjson", [start()])
    second = tmp_path / "network.ndjson.gz"
    second.write_bytes(gzip.compress(orjson.dumps(net()) + b"\n"))
    result = CliRunner().invoke(detect, [str(second), str(first)])
    assert len(_alerts(result.stdout)) == 1
    stdin = orjson.dumps(start()) + b"\n" + orjson.dumps(net())
    piped = CliRunner().invoke(detect, ["-"], input=stdin)
    assert len(_alerts(piped.stdout)) == 1
    default = CliRunner().invoke(detect, [], input=stdin)
    assert len(_alerts(default.stdout)) == 1


def test_detect_options(tmp_path: Path) -> None:
    data = _write(tmp_path / "e.ndjson", [start(t=T0), net(t=T0 + 120_000)])
    assert len(_alerts(CliRunner().invoke(detect, [str(data)]).stdout)) == 1
    assert _alerts(CliRunner().invoke(detect, [str(data), "--ttl", "1m"]).stdout) == []
    inst = _write(
        tmp_path / "i.ndjson", [start(name="InstallUtil.exe"), net(name="InstallUtil.exe")]
    )
    args = [str(inst), "--rule", str(RULE_INSTALLUTIL), "--lateness", "500ms", "--alert-cap", "0"]
    assert len(_alerts(CliRunner().invoke(detect, args).stdout)) == 1


def _seqwatch(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    code = "import sys; from app.cli.main import main; sys.argv[0] = 'seqwatch'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], input=stdin, capture_output=True, cwd=REPO, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["detect", "/no/such/file.ndjson"], "input file /no/such/file.ndjson not found"),
        (["detect", "--rule", "/no/rule.toml"], "rule file /no/rule.toml not found"),
        (["detect", "--ttl", "nine"], "invalid --ttl 'nine'"),
        (["detect", "--alert-cap", "-1"], "--alert-cap must be 0"),
    ],
)
def test_detect_errors_are_one_line_and_exit_2(args: list[str], needle: str) -> None:
    proc = _seqwatch(*args)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert err.startswith("seqwatch: ")
    assert needle in err
    assert err.count("\n") == 1


def test_detect_bad_rule_exit_2(tmp_path: Path) -> None:
    rule = tmp_path / "bad.toml"
    rule.write_text('[rule]\nrule_id = "r"\nname = "n"\nquery = "process where nosuch(a)"\n')
    proc = _seqwatch("detect", "--rule", str(rule))
    assert proc.returncode == 2
    assert "unsupported function `nosuch`" in proc.stderr.decode()


def test_detect_console_script_end_to_end(tmp_path: Path) -> None:
    data = _write(tmp_path / "e.ndjson", [start(), net(), b"{broken"])
    proc = _seqwatch("detect", str(data))
    assert proc.returncode == 0, proc.stderr
    assert len(_alerts(proc.stdout.decode())) == 1
    assert b"rejected 1 (not_json=1)" in proc.stderr


@pytest.mark.skipif(not (REPO / "topics" / "samples").is_dir(), reason="no topics/samples")
def test_detect_sample_topics_in_any_file_order() -> None:
    samples = REPO / "topics" / "samples"
    expected = json.loads((samples / "EXPECTED.json").read_text())
    want = sorted(a["process.entity_id"] for a in expected["alerts"])
    files = sorted(str(p) for p in samples.glob("*.ndjson"))
    for order in (files, files[::-1]):
        result = CliRunner().invoke(detect, order)
        assert result.exit_code == 0
        assert sorted(a["process"]["entity_id"] for a in _alerts(result.stdout)) == want
