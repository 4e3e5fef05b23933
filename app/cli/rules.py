"""`seqwatch rules check PATH...`: which rules load, and why the others do not."""

from __future__ import annotations

import tomllib
from pathlib import Path

import click

from app.engine import RuleError, load_rule
from app.engine.rule import stream_problem


@click.group()
def rules() -> None:
    """Inspect rule files (Elastic detection-rules TOML)."""


def rule_files(paths: tuple[str, ...]) -> list[Path]:
    """The .toml files of `paths` (files, or folders searched recursively), sorted."""
    out: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            out.extend(sorted(path.rglob("*.toml")))
        elif path.is_file():
            out.append(path)
        else:
            raise click.ClickException(f"{name}: no such file or folder")
    return out


def _language(path: Path) -> str | None:
    try:
        rule = tomllib.loads(path.read_text(encoding="utf-8")).get("rule", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return rule.get("language") if isinstance(rule, dict) else None


@rules.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--quiet", "-q", is_flag=True, help="Print only the rules that do not load.")
def check(paths: tuple[str, ...], quiet: bool) -> None:
    """Load every rule under PATHS; one line per rule, a summary last.

    Rules in another language than EQL (KQL, ES|QL, machine learning) are listed as
    skipped. Exit status 1 when an EQL rule does not load.
    """
    loaded = refused = skipped = 0
    for path in rule_files(paths):
        language = _language(path)
        if language not in (None, "eql"):
            skipped += 1
            if not quiet:
                click.echo(f"skipped  {path} (language {language})")
            continue
        try:
            rule = load_rule(path)
        except RuleError as exc:
            refused += 1
            click.echo(f"refused  {path}: {str(exc).removeprefix(f'{path}: ')}")
            continue
        loaded += 1
        if not quiet:
            compiled = rule.compiled
            kind = "event" if compiled.is_event else f"{len(compiled.stages)}-stage sequence"
            if not compiled.is_event:
                kind += ", eager" if compiled.is_pair else ", ordered"
            problem = stream_problem(rule)
            if problem is not None:
                kind += ", detect only: pipes"
            click.echo(f"ok       {path} ({kind}) {rule.name}")
    click.echo(f"{loaded} loaded, {refused} refused, {skipped} skipped (not EQL)")
    raise SystemExit(1 if refused else 0)
