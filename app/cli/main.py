"""Entry point of the `seqwatch` console script.

Subcommands are imported lazily so that `seqwatch detect` never pays for importing
Faust, and `seqwatch kafka up` works before the Python Kafka clients are warm.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from app.errors import SeqwatchError

# name -> "module:attribute"; the order is the order of `seqwatch --help`.
COMMANDS: dict[str, str] = {
    "worker": "app.cli.worker:worker",
    "detect": "app.cli.detect:detect",
    "coverage": "app.cli.coverage:coverage",
    "replay": "app.cli.replay:replay",
    "record": "app.cli.record:record",
    "alerts": "app.cli.alerts:alerts",
    "topics": "app.cli.topics:topics",
    "rules": "app.cli.rules:rules",
    "kafka": "devtools.cli.kafka:kafka",
    "bench": "devtools.cli.bench:bench",
    "demo": "devtools.cli.demo:demo",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, target in COMMANDS.items() if _module_exists(target)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None or not _module_exists(target):
            return None
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


def _module_exists(target: str) -> bool:
    return importlib.util.find_spec(target.split(":")[0]) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="seqwatch")
def cli() -> None:
    """seqwatch: Elastic EQL sequence detection on Kafka streams, in real time."""


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI; a SeqwatchError becomes one line on stderr and exit code 2."""
    try:
        return cli.main(args=argv, prog_name="seqwatch", standalone_mode=False)
    except SeqwatchError as exc:
        click.echo(f"seqwatch: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("seqwatch: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
