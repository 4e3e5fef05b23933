"""`seqwatch coverage`: what Kibana's schedule would have missed of a recording, and how
much later it would have alerted (app/coverage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from app.cli.detect import DETECT_LIMITS
from app.cli.options import load_cli_rules, settings_from, settings_options
from app.coverage import plot, recording, report, schedule, stream
from app.durations import parse_duration
from app.engine import EngineSettings
from app.engine.rule import Rule
from app.engine.ruleset import RuleSet
from app.engine.timestamps import parse_timestamp_ms
from app.errors import ConfigError

KIBANA_MAX_SIGNALS = 100
"""Kibana's default `max_signals` for a rule that does not set it."""


def _lookback(rule: Rule) -> int | None:
    if rule.lookback is None:
        return None
    text = rule.lookback.strip()
    if not text.startswith("now-"):
        raise ConfigError(f"rule {rule.name!r}: cannot read its `from` {rule.lookback!r}")
    return parse_duration(text[4:], what="rule `from`")


def _schedule(rule: Rule, options: dict[str, Any]) -> schedule.Schedule:
    interval = options["interval"] or rule.interval or "5m"
    lookback = parse_duration(options["lookback"]) if options["lookback"] else _lookback(rule)
    interval_ms = parse_duration(interval, what="interval")
    if interval_ms <= 0:
        raise ConfigError("--interval must be more than 0")
    first = options["first_run"]
    first_ms = None
    if first is not None:
        first_ms = parse_timestamp_ms(first)
        if first_ms is None:
            raise ConfigError(f"invalid --first-run {first!r}: expected an ISO 8601 time")
    max_signals = options["max_signals"] or rule.max_signals or KIBANA_MAX_SIGNALS
    return schedule.Schedule(
        interval_ms=interval_ms,
        lookback_ms=lookback if lookback is not None else interval_ms,
        max_signals=max_signals,
        first_run_ms=first_ms,
        run_delay_ms=parse_duration(options["run_delay"], what="--run-delay"),
    )


@click.command("coverage")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--rule", "rule_path", metavar="FILE", help="Rule TOML (default: bundled 7.10 v5).")
@click.option("--rules", "rule_paths", metavar="PATH", multiple=True, help="Rule files or folders.")
@click.option("--interval", help="Run every (default: the rule's `interval`, else 5m).")
@click.option("--lookback", help="Each run searches back (default: the rule's `from`).")
@click.option("--max-signals", type=click.IntRange(1), help="Alerts per run (default: rule's).")
@click.option("--first-run", metavar="TIME", help="First scheduled run (ISO 8601).")
@click.option(
    "--ingested-field",
    default="event.ingested",
    show_default=True,
    help="Field holding when Elasticsearch indexed the record.",
)
@click.option(
    "--ingest-delay",
    metavar="D",
    help="Index every record this long after its @timestamp instead (default: the field, else 0).",
)
@click.option("--run-delay", default="0", metavar="D", help="Each run starts this late.")
@click.option(
    "--stream-latency",
    default="200ms",
    show_default=True,
    metavar="D",
    help="The worker's own latency added to each stream alert (make bench: p50 199 ms).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object last.")
@click.option("--plot", "plot_path", metavar="FILE", help="Write a picture: FILE.html or FILE.svg.")
@settings_options(EngineSettings)
def coverage(
    files: tuple[str, ...],
    rule_path: str | None,
    rule_paths: tuple[str, ...],
    ingested_field: str,
    ingest_delay: str | None,
    as_json: bool,
    plot_path: str | None,
    stream_latency: str,
    **options: Any,
) -> None:
    """Emulate Kibana's scheduled runs of the rule on FILEs (NDJSON recordings) and compare
    them with seqwatch's stream: alerts both found, those only the stream found with the
    reason the schedule missed them, and the detection delay of each."""
    picked = {k: options.pop(k) for k in ("interval", "lookback", "max_signals", "first_run")}
    picked["run_delay"] = options.pop("run_delay")
    settings: EngineSettings = settings_from(EngineSettings, options).validate()
    if plot_path is not None and Path(plot_path).suffix not in (".html", ".svg"):
        raise ConfigError(f"--plot {plot_path}: give a .html or .svg file")
    mapping = settings.load_mapping()
    rules = load_cli_rules(rule_path, rule_paths, mapping, "coverage")
    latency = parse_duration(stream_latency, what="--stream-latency")
    delay = parse_duration(ingest_delay, what="--ingest-delay") if ingest_delay else None
    if not rules:
        raise ConfigError("no rule loaded")
    plans = [_schedule(rule, picked) for rule in rules]
    # The schedule's engine: Elasticsearch's answer in a window (no TTL shorter than the
    # window, no alert cap but max_signals); the stream's: the worker's settings. Both tag
    # a rule's events alike (`rule_tag`), so the recording is read and decoded once.
    offline = EngineSettings(
        ttl_ms=max(p.lookback_ms for p in plans) + 1,
        lateness_ms=0,
        alert_cap=0,
        mapping=settings.mapping,
    )
    searched = RuleSet(rules, offline, limits=DETECT_LIMITS, mapping=mapping)
    online = RuleSet(rules, settings, mapping=mapping)
    recorded = recording.read(
        files,
        searched,
        ingested_field=ingested_field,
        ingest_delay_ms=delay,
        max_record_bytes=settings.max_record_bytes,
    )
    if recorded.first_ms is None:
        raise ConfigError(f"no record of {', '.join(files)} has an event time")
    results = []
    for rule, plan, engine in zip(rules, plans, searched.engines, strict=True):
        lines = recording.of_rule(recorded.lines, engine.tag)
        # Runs until none can hold another event: a window past the last event time, and
        # a run after the last indexing.
        until = max((recorded.last_ms or 0) + plan.lookback_ms, recorded.last_ingested_ms or 0)
        scheduled = schedule.emulate(lines, searched, plan, recorded.first_ms, until)
        streamed = stream.emulate(lines, online, settings.lateness_ms, latency)
        results.append(report.compare(rule, plan, lines, scheduled, streamed, settings.ttl_ms))
    data = report.summary(results)
    data["records"] = recorded.records
    data["unreadable"] = recorded.unreadable
    click.echo(report.table(data))
    if plot_path is not None:
        plot.write(Path(plot_path), results, data)
        click.echo(f"picture written to {plot_path}")
    if as_json:
        click.echo(orjson.dumps(data).decode())
