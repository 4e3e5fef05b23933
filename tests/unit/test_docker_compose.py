"""docker-compose.yml is a valid Compose file and in step with the CLI (no Docker needed).

The file is validated against the Compose Specification's JSON schema, the one `docker
compose` itself applies, as check-jsonschema vendors it; then `<<:` merges are resolved
(as YAML 1.1 loaders, Docker's included, do) and every service command is parsed by the
seqwatch CLI.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import click
import jsonschema
import orjson
import yaml

from app.cli.main import cli
from tests.helpers import ROOT


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_file_validates_against_the_compose_specification() -> None:
    vendor = files("check_jsonschema.builtin_schemas.vendor")
    schema = orjson.loads(vendor.joinpath("compose-spec.json").read_bytes())
    assert schema["$schema"].startswith("https://json-schema.org/draft-07/")
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(_compose())]
    assert errors == []
    broken = _compose()
    broken["services"]["worker"]["restart"] = ["always"]
    broken["services"]["worker"]["scale_out"] = 3
    assert len(list(validator.iter_errors(broken))) == 2, "the schema is really applied"


def test_compose_file_has_the_services() -> None:
    services = _compose()["services"]
    assert {"kafka", "topics", "worker", "replay", "alerts"} <= services.keys()
    assert services["kafka"]["image"].startswith("apache/kafka:")
    env = services["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft, one node"
    worker = services["worker"]
    assert "container_name" not in worker, "a fixed name would stop --scale worker=3"
    assert not worker.get("ports"), "published host ports would clash when scaled"
    assert worker["build"] == "." and worker["environment"]["SEQWATCH_BOOTSTRAP"]


def test_every_service_command_parses_with_the_cli() -> None:
    for name, service in _compose()["services"].items():
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
