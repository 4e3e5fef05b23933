"""`seqwatch detect`: the engine over NDJSON files or stdin, no Kafka needed.

Offline backtesting (like `eql query`) with exactly the engine the worker runs: alerts as
NDJSON on stdout, a summary on stderr. Bad lines are counted, never fatal (exit 0); a
missing file or a bad rule is one line and exit 2 (through app.errors.ConfigError).
"""

from __future__ import annotations

import gzip
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import click

from app.durations import format_duration, parse_duration
from app.engine import Engine, Event, MemoryState, load_rule
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
@click.option("--ttl", default="9m", show_default=True, help="Longest pair span and state TTL.")
@click.option("--lateness", default="60s", show_default=True, help="Allowed out-of-orderness.")
@click.option(
    "--alert-cap",
    type=int,
    default=100,
    show_default=True,
    help="Max alerts per --cap-window of event time (0 = unlimited).",
)
@click.option("--cap-window", default="5m", show_default=True, help="Alert cap bucket.")
def detect(
    files: tuple[str, ...],
    rule_path: str | None,
    ttl: str,
    lateness: str,
    alert_cap: int,
    cap_window: str,
) -> None:
    """Run the rule over NDJSON FILEs (or stdin, or '-'); alerts to stdout as NDJSON."""
    rule = load_rule(rule_path)
    ttl_ms = parse_duration(ttl, what="--ttl")
    lateness_ms = parse_duration(lateness, what="--lateness")
    window_ms = parse_duration(cap_window, what="--cap-window")
    if ttl_ms <= 0:
        raise ConfigError(f"--ttl must be positive, got {ttl}")
    if alert_cap < 0:
        raise ConfigError(f"--alert-cap must be 0 (unlimited) or more, got {alert_cap}")
    names = files or ("-",)
    for name in names:
        if name != "-" and not Path(name).is_file():
            _open(name)  # raises the right ConfigError
    engine = Engine(rule, ttl_ms, lateness_ms, alert_cap, window_ms)
    state = MemoryState(serialize=False)
    out = sys.stdout.buffer
    scan, process, dumps = engine.scan_block, engine.process, engine.alert_bytes
    started = time.perf_counter()
    current, current_topic, line = -1, "", 1
    for index, topic, block in _blocks(names):
        if index != current:  # a new file: its line numbers start at 1
            if current >= 0:
                engine.end_source(state, current_topic, 0)
            current, current_topic, line = index, topic, 1
        newlines, results = scan(block, topic, line)
        line += newlines
        for result in results:
            if type(result) is Event:
                for alert in process(result, state):
                    out.write(dumps(alert) + b"\n")
    out.flush()
    elapsed = time.perf_counter() - started
    _summary(engine, elapsed, ttl_ms, lateness_ms)


def _summary(engine: Engine, elapsed: float, ttl_ms: int, lateness_ms: int) -> None:
    stats = engine.stats
    rate = stats.received / elapsed if elapsed > 0 else 0.0
    rejected = sum(stats.rejected.values())
    reasons = ", ".join(f"{k}={v}" for k, v in sorted(stats.rejected.items()))
    lines = [
        f"seqwatch detect: rule {engine.rule.name!r} (ttl {format_duration(ttl_ms)},"
        f" lateness {format_duration(lateness_ms)})",
        f"  events read {stats.received} in {elapsed:.2f} s ({rate:,.0f} events/s)",
        f"  matched a stage {stats.decoded}, irrelevant {stats.dropped}, no join key"
        f" {stats.no_key}, duplicates {stats.duplicates}, late {stats.late}",
        f"  rejected {rejected}" + (f" ({reasons})" if reasons else ""),
        f"  alerts {stats.alerts}, held by cap {stats.held_by_cap}",
    ]
    click.echo("\n".join(lines), err=True)
