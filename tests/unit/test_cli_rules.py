"""`seqwatch rules check`: what loads, what does not and why, per rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

RULE = '[rule]\nrule_id = "{id}"\nname = "{id}"\nlanguage = "{lang}"\nquery = """{query}"""\n'


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from app.cli.main import main; sys.argv[0] = 'seqwatch'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, "rules", "check", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_each_rule_is_one_line_with_a_summary(tmp_path: Path) -> None:
    folder = tmp_path / "rules" / "windows"
    folder.mkdir(parents=True)
    (folder / "a.toml").write_text(
        RULE.format(id="a", lang="eql", query='process where process.name : "x.exe"')
    )
    (folder / "b.toml").write_text(
        RULE.format(
            id="b",
            lang="eql",
            query="join by a [process where true] [file where true]",
        )
    )
    (folder / "c.toml").write_text(RULE.format(id="c", lang="kuery", query="event.code:1"))
    result = _check(str(tmp_path / "rules"))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok ") and "(event) a" in lines[0]
    assert lines[1].startswith("refused ") and "unsupported join" in lines[1]
    assert lines[2].startswith("skipped ") and "language kuery" in lines[2]
    assert lines[-1] == "1 loaded, 1 refused, 1 skipped (not EQL)"
    quiet = _check("-q", str(folder / "a.toml"), str(folder / "c.toml"))
    assert quiet.returncode == 0 and quiet.stdout.splitlines() == [
        "1 loaded, 0 refused, 1 skipped (not EQL)"
    ]


def test_the_bundled_rules_all_load() -> None:
    result = _check(str(ROOT / "app" / "rules"))
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-1] == "3 loaded, 0 refused, 0 skipped (not EQL)"
