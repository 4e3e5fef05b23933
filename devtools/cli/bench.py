"""`seqwatch bench`: the benchmark of issue 6, rerunnable by anyone with `make bench`.

Thin on purpose: options and exit status here, the phases in devtools/bench/. Progress goes to
stderr so that stdout carries only the table and, with --json, one JSON object last.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click
from rich.console import Console

from app.cli.options import kafka_options
from app.errors import ConfigError
from app.kafka.settings import KafkaSettings


@click.command("bench")
@click.option("--events", type=int, default=500_000, show_default=True, help="Events to load.")
@click.option("--msbuild-share", type=float, default=0.01, show_default=True)
@click.option(
    "--event-bytes",
    type=int,
    default=600,
    show_default=True,
    help="Target mean record size (the generator's lean floor is ~840 B).",
)
@click.option(
    "--rate", type=float, default=5000.0, show_default=True, help="Latency phase events/s."
)
@click.option("--latency-seconds", type=float, default=20.0, show_default=True, help="0 skips it.")
@click.option(
    "--pair-rate",
    type=float,
    default=20.0,
    show_default=True,
    help="MSBuild start+connection pairs/s within --rate.",
)
@click.option("--repeat", type=int, default=3, show_default=True, help="Runs per phase (median).")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--disorder-ms",
    type=int,
    default=5000,
    show_default=True,
    help="Arrival disorder of the generated stream (within the worker's 60 s lateness).",
)
@click.option(
    "--port",
    type=int,
    default=9092,
    show_default=True,
    help="Local broker port (started if needed, stopped after if the bench started it).",
)
@click.option(
    "--rules",
    "rules",
    multiple=True,
    metavar="PATH",
    help="Also run every rule under PATH (repeatable), as `seqwatch worker --rules` does;"
    " the bundled rule's alerts are the ones counted.",
)
@click.option(
    "--many-rules",
    type=int,
    default=0,
    show_default=True,
    help="Also run this many rules of the bundled rule's shape for other binaries"
    " (devtools/bench/rulesets.py: Elastic's '<binary> Making Network Connections' family).",
)
@click.option(
    "--storm-starts",
    type=int,
    default=20_000,
    show_default=True,
    help="Starts waiting when the storm phase's worker starts (then kill -9, restart); 0 skips.",
)
@click.option(
    "--latency-samples",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every pair of the latency phase as [seconds into the phase, ms, ms until the"
    " alert was sent] (JSON).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object last on stdout.")
@click.option("--keep", is_flag=True, help="Keep the bench topics and state directories.")
@kafka_options
def bench(
    kafka: KafkaSettings,
    events: int,
    msbuild_share: float,
    event_bytes: int,
    rate: float,
    latency_seconds: float,
    pair_rate: float,
    repeat: int,
    seed: int,
    disorder_ms: int,
    port: int,
    rules: tuple[str, ...],
    many_rules: int,
    storm_starts: int,
    latency_samples: Path | None,
    as_json: bool,
    keep: bool,
) -> None:
    """Measure one worker against a bare confluent-kafka consumer, its detection latency at a
    steady load, and the detect engine alone, on a generated realistic stream.

    Without --bootstrap it uses (and if needed starts) the local broker on --port."""
    from devtools.bench.rulesets import BINARIES, write_rules
    from devtools.bench.runner import Bench, BenchOptions, print_result

    problems = []
    if events <= 0:
        problems.append("--events must be positive")
    if repeat < 1:
        problems.append("--repeat must be at least 1")
    if not 0.0 <= msbuild_share <= 1.0:
        problems.append("--msbuild-share must be within [0, 1]")
    if latency_seconds < 0:
        problems.append("--latency-seconds must be 0 (skip) or more")
    if latency_seconds > 0 and (pair_rate <= 0 or rate <= 2 * pair_rate):
        problems.append("--rate must exceed twice --pair-rate, and --pair-rate be positive")
    if disorder_ms < 0 or disorder_ms >= 60_000:
        problems.append("--disorder-ms must be within [0, 60000) (the worker's lateness)")
    if storm_starts < 0:
        problems.append("--storm-starts must be 0 (skip) or more")
    if not 0 <= many_rules <= len(BINARIES):
        problems.append(f"--many-rules must be within [0, {len(BINARIES)}]")
    if problems:
        raise ConfigError("; ".join(problems))
    ctx = click.get_current_context()
    explicit = ctx.get_parameter_source("bootstrap") not in (
        None,
        click.core.ParameterSource.DEFAULT,
    )
    with tempfile.TemporaryDirectory(prefix="seqwatch-bench-rules-") as generated:
        if many_rules:  # lives as long as the run: each worker reads the rules at start
            write_rules(Path(generated), many_rules)
            rules = (*rules, generated)
        options = BenchOptions(
            events=events,
            msbuild_share=msbuild_share,
            event_bytes=event_bytes,
            rate=rate,
            latency_seconds=latency_seconds,
            pair_rate=pair_rate,
            repeat=repeat,
            seed=seed,
            disorder_ms=disorder_ms,
            keep=keep,
            port=port,
            kafka=kafka if explicit else None,
            rules=rules,
            storm_starts=storm_starts,
            latency_samples=latency_samples,
        )
        console = Console(stderr=True)
        result = Bench(options, console).run()
        print_result(result, console, as_json)
    if not result.ok:
        sys.exit(1)
