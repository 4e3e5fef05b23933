"""`seqwatch rules check PATH...`: which rules load, and why the others do not."""

from __future__ import annotations

import click

from app.engine import RuleError, load_rule
from app.engine.rule import rule_files, rule_language, stream_problem


@click.group()
def rules() -> None:
    """Inspect rule files (Elastic detection-rules TOML)."""


@rules.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--quiet", "-q", is_flag=True, help="Print only the rules that do not load.")
def check(paths: tuple[str, ...], quiet: bool) -> None:
    """Load every rule under PATHS; one line per rule, a summary last.

    Rules in another language than EQL (KQL, ES|QL, machine learning) are listed as
    skipped. Exit status 1 when an EQL rule does not load.
    """
    loaded = refused = skipped = 0
    try:
        files = rule_files(paths)
    except RuleError as exc:
        raise click.ClickException(str(exc)) from None
    for path in files:
        language = rule_language(path)
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
