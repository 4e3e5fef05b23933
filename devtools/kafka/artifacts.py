"""Kafka's jars, fetched once from Maven Central with the machine's Maven, and the tools
the local broker needs. Cached outside the repository, shared by clones."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from app.errors import ConfigError, SeqwatchError

KAFKA_VERSION = "4.1.1"
"""Kafka 4.1: KRaft only, and the oldest 4.x line that aiokafka 0.14 and librdkafka 2.x
both speak to without the protocol versions removed in 4.0."""


def cache_root() -> Path:
    """Where jars and run directories live: outside the repo, shared by clones."""
    env = os.environ.get("SEQWATCH_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "seqwatch"


def require_tool(name: str, why: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConfigError(f"'{name}' not found on PATH: {why}")
    return path


def ensure_libs(libs_dir: Path, version: str) -> Path:
    """Resolve Kafka's runtime jars into `libs_dir` once; later calls are free."""
    marker = libs_dir / ".complete"
    if marker.exists():
        return libs_dir
    mvn = require_tool("mvn", "Maven is needed once to fetch Kafka from Maven Central")
    libs_dir.mkdir(parents=True, exist_ok=True)
    pom_path = Path(__file__).with_name("pom.xml")
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom_path),
            f"-Dkafka.version={version}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs_dir}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        last = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
        raise SeqwatchError(
            f"Maven could not resolve org.apache.kafka:kafka_2.13:{version}: {last[0]}"
        )
    marker.touch()
    return libs_dir
