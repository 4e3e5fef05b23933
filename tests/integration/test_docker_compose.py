"""docker-compose.yml stays valid and in step with the CLI (no Docker engine needed)."""

from __future__ import annotations

import shutil
import subprocess

import click
import pytest
import yaml

from app.cli.main import cli
from tests.helpers import ROOT


def _compose() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor `docker-compose` is installed (.ci/run installs it)")


def _config() -> dict:
    result = subprocess.run(
        [*_compose(), "--profile", "setup", "--profile", "tools", "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_is_valid_and_has_the_services() -> None:
    services = _config()["services"]
    assert {"kafka", "topics", "worker", "replay", "alerts"} <= services.keys()
    assert services["kafka"]["image"].startswith("apache/kafka:")
    env = services["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft, one node"
    worker = services["worker"]
    assert "container_name" not in worker, "a fixed name would stop --scale worker=3"
    assert not worker.get("ports"), "published host ports would clash when scaled"


def test_every_service_command_parses_with_the_cli() -> None:
    for name, service in _config()["services"].items():
        if name == "kafka":
            continue
        args = [str(a) for a in service["command"]]
        ctx = cli.make_context("seqwatch", list(args), resilient_parsing=False)
        command = cli.get_command(ctx, args[0])
        assert command is not None, f"{name}: unknown command {args[0]}"
        sub = args[1:]
        if isinstance(command, click.Group):
            command = command.get_command(ctx, sub[0])
            sub = sub[1:]
        command.make_context(args[0], sub)  # raises on an unknown option or bad value
        for path in (a for a in sub if a.startswith("topics/")):
            assert (ROOT / path).exists(), f"{name}: {path} is not in the repository"
