"""Helpers for tests that drive seqwatch as a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEQWATCH = [sys.executable, "-m", "app.cli.main"]


def run_seqwatch(
    *args: str,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI as a user does: a separate process, exit code, stdout and stderr."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*SEQWATCH, *args],
        cwd=ROOT,
        env=full_env,
        input=input,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
