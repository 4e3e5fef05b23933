"""`seqwatch detect`: the engine over NDJSON files or stdin, no Kafka needed.

Offline backtesting (like `eql query`) with exactly the engine the worker runs: alerts as
NDJSON on stdout, a summary on stderr. Bad lines are counted, never fatal (exit 0); a
missing file or a bad rule is one line and exit 2 (through app.errors.ConfigError).
"""

from __future__ import annotations

import gzip
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import click

from app.cli.options import load_cli_rules, settings_from, settings_options
from app.durations import format_duration
from app.engine import Engine, EngineSettings, Event, MemoryState
from app.engine.limits import DEFAULT_LIMITS
from app.engine.ordered import ordinal
from app.engine.ruleset import RuleSet
from app.errors import ConfigError


def _open(name: str) -> tuple[str, IO[bytes]]:
    if name == "-":
        return "<stdin>", sys.stdin.buffer
    path = Path(name)
    if not path.exists():
        raise ConfigError(f"input file {name} not found")
    if path.is_dir():
        raise ConfigError(f"input {name} is a directory, not an NDJSON file")
    try:
        if path.suffix == ".gz":
            return path.name, gzip.open(path, "rb")
        return path.name, path.open("rb", buffering=1 << 20)
    except OSError as exc:
        raise ConfigError(f"cannot read {name}: {exc.strerror or exc}") from None


_CHUNK = 1 << 19


def _blocks(names: tuple[str, ...]) -> Iterator[tuple[int, str, bytes]]:
    """(file index, file name, block of whole lines), in order."""
    for index, name in enumerate(names):
        topic, stream = _open(name)
        read = getattr(stream, "read1", stream.read)  # read1: stream stdin without waiting
        try:
            carry = b""
            while chunk := read(_CHUNK):
                data = carry + chunk if carry else chunk
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    carry = data
                    continue
                block, carry = data[:cut], data[cut:]
                yield index, topic, block
            if carry:
                yield index, topic, carry
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()


@click.command("detect")
@click.argument("files", nargs=-1, metavar="[FILE ...]")
@click.option("--rule", "rule_path", metavar="FILE", help="Rule TOML (default: bundled 7.10 v5).")
@click.option(
    "--rules",
    "rule_paths",
    metavar="PATH",
    multiple=True,
    help="Rule files or folders (repeatable): every EQL rule under them; one that does not"
    " load is reported on stderr and skipped.",
)
@settings_options(EngineSettings)
def detect(
    files: tuple[str, ...], rule_path: str | None, rule_paths: tuple[str, ...], **options: Any
) -> None:
    """Run the rules over NDJSON FILEs (or stdin, or '-'); alerts to stdout as NDJSON."""
    settings: EngineSettings = settings_from(EngineSettings, options).validate()
    mapping = settings.load_mapping()
    rules = load_cli_rules(rule_path, rule_paths, mapping, "detect")
    names = files or ("-",)
    for name in names:
        if name != "-" and not Path(name).is_file():
            _open(name)  # raises the right ConfigError
    engine = RuleSet(rules, settings, limits=DETECT_LIMITS, mapping=mapping)
    out = sys.stdout.buffer
    dumps = engine.alert_bytes
    started = time.perf_counter()
    alerts: Iterable[dict[str, Any]] = run(engine, _blocks(names))
    pipes = [rule.compiled.pipes for rule in rules if rule.compiled.pipes]
    if pipes:
        if len(rules) > 1:
            raise ConfigError("pipes (`head`, `tail`) need the rule to run alone in detect")
        alerts = apply_pipes(list(alerts), pipes[0])
    for alert in alerts:
        out.write(dumps(alert) + b"\n")
    out.flush()
    elapsed = time.perf_counter() - started
    _summary(engine, elapsed, settings.ttl_ms, settings.lateness_ms)


DETECT_LIMITS = replace(DEFAULT_LIMITS, buffered_events=1 << 30)
"""Offline, a key holds its events until the watermark however many there are: the
answer is Elasticsearch's for any disorder within the lateness (the stream bounds it)."""


def run(
    engine: Engine | RuleSet, blocks: Iterable[tuple[int, str, bytes]]
) -> Iterator[dict[str, Any]]:
    """The alerts of `engine` over (file index, file name, NDJSON block) in order: what
    `seqwatch detect` prints, and what the conformance tests compare with Elasticsearch."""
    state = MemoryState(serialize=False)
    scan, process = engine.scan_block, engine.process
    current, current_topic, line = -1, "", 1
    for index, topic, block in blocks:
        if index != current:  # a new file: its line numbers start at 1
            if current >= 0:
                engine.end_source(state, current_topic, 0)
            current, current_topic, line = index, topic, 1
        newlines, results = scan(block, topic, line)
        line += newlines
        for result in results:
            if type(result) is Event:
                yield from process(result, state)
            elif type(result) is tuple:
                for event in result:
                    yield from process(event, state)
    yield from engine.finish(state)


def result_order(alert: dict[str, Any]) -> Any:
    """Elasticsearch's order of results: by the last event of the sequence (the event
    itself for an event query), then the join key."""
    last = [e for e in alert["events"] if not e.get("missing")][-1]
    entry = {"t": last["timestamp_ms"], "d": last["digest"], "tb": last.get("tiebreaker")}
    keys = alert.get("seqwatch", {}).get("join_keys") or []
    return ordinal(entry), ["" if k is None else str(k) for k in keys]


def apply_pipes(
    alerts: list[dict[str, Any]], pipes: tuple[tuple[str, int], ...]
) -> list[dict[str, Any]]:
    """`head N` / `tail N` over the answer in Elasticsearch's result order."""
    alerts = sorted(alerts, key=result_order)
    for name, count in pipes:
        alerts = alerts[:count] if name == "head" else alerts[len(alerts) - count :]
    return alerts


def _summary(engine: RuleSet, elapsed: float, ttl_ms: int, lateness_ms: int) -> None:
    stats = engine.totals()
    rules = engine.rules
    named = f"rule {rules[0].name!r}" if len(rules) == 1 else f"{len(rules)} rules"
    rate = stats.received / elapsed if elapsed > 0 else 0.0
    rejected = sum(stats.rejected.values())
    reasons = ", ".join(f"{k}={v}" for k, v in sorted(stats.rejected.items()))
    lines = [
        f"seqwatch detect: {named} (ttl {format_duration(ttl_ms)},"
        f" lateness {format_duration(lateness_ms)})",
        f"  events read {stats.received} in {elapsed:.2f} s ({rate:,.0f} events/s)",
        f"  matched a stage {stats.decoded}, irrelevant {stats.dropped}, no join key"
        f" {stats.no_key}, duplicates {stats.duplicates}, late {stats.late}",
        f"  rejected {rejected}" + (f" ({reasons})" if reasons else ""),
        f"  alerts {stats.alerts}, held by cap {stats.held_by_cap}",
    ]
    click.echo("\n".join(lines), err=True)
