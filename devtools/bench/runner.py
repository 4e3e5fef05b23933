"""The order of the benchmark's phases, the broker it needs, and cleaning up after it.

One run, one stream, one set of topics: the baseline, the worker repeats and the engine
row all read the same records, so their ratio compares work and nothing else. The latency
phase gets fresh topics because it needs an empty input and a worker that is already
waiting. Whatever fails, the bench's topics, groups and state directories are removed
(unless --keep) and a broker the bench started is stopped again.
"""

from __future__ import annotations

import os
import platform
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from app.engine.rule import DEFAULT_RULE
from app.kafka.settings import KafkaSettings
from devtools import synth
from devtools.bench import baseline as base
from devtools.bench import engine_run, ingest_decode, latency, load, report
from devtools.bench.alerts import AlertReader
from devtools.bench.storm import StormRun, run_storm
from devtools.bench.worker_run import WorkerRun, WorkerSpec, run_end_to_end
from devtools.harness import WorkerProcess
from devtools.kafka import KAFKA_VERSION, LocalKafka


@dataclass
class BenchOptions:
    events: int = 500_000
    msbuild_share: float = 0.01
    event_bytes: int = 600
    rate: float = 5000.0
    latency_seconds: float = 20.0
    pair_rate: float = 20.0
    repeat: int = 3
    seed: int = 1
    disorder_ms: int = 5000
    keep: bool = False
    port: int = 9092
    kafka: KafkaSettings | None = None
    """An explicit cluster (--bootstrap): used as is, never started or stopped."""
    storm_starts: int = 20_000
    """Starts already in the input when the storm phase's worker starts (0 skips it)."""
    latency_samples: Path | None = None
    """Where to write the latency phase's samples: [seconds into the phase, ms, ms until
    the alert was sent] each."""
    rules: tuple[str, ...] = ()
    """--rules folders or files: the engine and the worker run them besides the bundled
    rule (whose alerts the bench counts)."""

    @property
    def rule_args(self) -> tuple[str, ...]:
        if not self.rules:
            return ()
        return ("--rule", str(DEFAULT_RULE), *(a for r in self.rules for a in ("--rules", r)))


@dataclass
class BenchResult:
    summary: dict[str, Any]
    rows: list[report.Row] = field(default_factory=list)
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    """Wrong answers (alert counts, duplicates, a stall): the bench exits 1."""
    warnings: list[str] = field(default_factory=list)
    """Doubts about the measurement itself, reported but not failing."""


def machine_info() -> dict[str, Any]:
    """Enough to compare runs across machines, and the load average: on a shared machine a
    busy neighbour explains a slow run better than any profile."""
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_start": _loadavg(),
    }


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


class Bench:
    def __init__(self, options: BenchOptions, console: Console) -> None:
        self.o = options
        self.console = console
        self.names = load.BenchNames(load.new_run_id())
        self.broker: LocalKafka | None = None
        self.started_broker = False
        self.workdir = Path(tempfile.mkdtemp(prefix=f"seqwatch-bench-{self.names.run_id}-"))
        self.settings = options.kafka or KafkaSettings(bootstrap=f"127.0.0.1:{options.port}")
        self.current_worker: WorkerProcess | None = None
        self.warnings: list[str] = []

    def say(self, text: str) -> None:
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {text}")

    # -- the whole run -------------------------------------------------------------

    def run(self) -> BenchResult:
        try:
            self._broker_up()
            return self._measure()
        finally:
            self._cleanup()

    def _broker_up(self) -> None:
        if self.o.kafka is not None:
            from app.kafka.admin import connect

            connect(self.settings)
            self.say(f"using the Kafka cluster at {self.settings.bootstrap}")
            return
        self.broker = LocalKafka(port=self.o.port)
        self.started_broker = self.broker.pid() is None
        self.say(self.broker.up())

    def _measure(self) -> BenchResult:
        o = self.o
        machine = machine_info()
        self.say(
            f"generating {o.events:,} events (seed {o.seed}, {o.msbuild_share:.1%} MSBuild,"
            f" target {o.event_bytes} B, disorder {o.disorder_ms} ms)"
        )
        scenario = synth.generate(
            o.events,
            seed=o.seed,
            msbuild_share=o.msbuild_share,
            event_bytes=o.event_bytes,
            disorder_ms=o.disorder_ms,
        )
        records = scenario.records
        n = len(records)
        expected = scenario.expected_alerts
        mean_bytes = sum(len(r.value) for r in records) / max(1, n)
        self.say(f"{n:,} records, mean {mean_bytes:.0f} B, {expected} expected alerts")

        inputs = self.names.inputs()
        load.create_topics(self.settings, inputs.values())
        produced, load_s = load.load(self.settings, records, inputs)
        visible = load.wait_visible(self.settings, list(inputs.values()), n)
        self.say(f"loaded {produced:,} records into {self.names.prefix}* in {load_s:.1f} s")
        if visible != n:
            raise RuntimeError(f"bench topics hold {visible} records, expected {n}")
        partitions = load.partitions_of(self.settings, list(inputs.values()))

        # (a) baseline, consume-only and consume+orjson alternating so drift hits both; the
        # large-fetch row shows what the worker's small fetches (ingest.FETCH) cost
        parsed = report.Row("baseline: confluent consume(10000) + orjson.loads", n)
        raw = report.Row("baseline: confluent consume(10000) only", n)
        large = report.Row("baseline, 8 MiB partition fetches: consume + orjson.loads", n)
        for k in range(o.repeat):
            for row, parse, fetch in (
                (parsed, True, None),
                (raw, False, None),
                (large, True, base.LARGE_FETCH),
            ):
                r = base.read_all(self.settings, partitions, n, parse=parse, fetch=fetch)
                row.seconds.append(r.seconds)
                self.say(f"{row.phase} #{k + 1}: {n / r.seconds:,.0f} events/s")

        # (d) the detect engine alone, same records
        data = engine_run.blocks(records)
        engine_row = report.Row("seqwatch detect engine (in-process, 1 core)", n)
        engine_alerts: list[int] = []
        for k in range(o.repeat):
            er = engine_run.run_engine(data, rules=o.rules)
            engine_row.seconds.append(er.seconds)
            engine_alerts.append(er.alert_ids)
            self.say(
                f"detect engine #{k + 1}: {n / er.seconds:,.0f} events/s, {er.alert_ids} alerts"
            )
        engine_row.note = f"alerts {sorted(set(engine_alerts))} of {expected}"
        del data

        # (f) the ingest stage's decode alone: batch scan vs record by record, same records
        decode_rows = (
            report.Row("ingest decode: record by record (in-process)", n),
            report.Row("ingest decode: batch scan, 5,000 at a time (in-process)", n),
        )
        kept: set[int] = set()
        for k in range(o.repeat):
            for row, batched in zip(decode_rows, (False, True), strict=True):
                dr = ingest_decode.run_decode(records, batched=batched, rules=o.rules)
                row.seconds.append(dr.seconds)
                kept.add(dr.kept)
                self.say(f"{row.phase} #{k + 1}: {n / dr.seconds:,.0f} events/s, {dr.kept} kept")
        decode_problems = (
            [f"ingest decode: batch scan and record by record kept {sorted(kept)} records"]
            if len(kept) > 1
            else []
        )
        for row in decode_rows:
            row.note = f"kept {sorted(kept)}"

        # (b) one worker end to end, fresh group, state and alerts topic per repeat
        worker_row = report.Row("seqwatch worker end to end (1 worker)", n)
        runs: list[WorkerRun] = []
        problems: list[str] = decode_problems
        for k in range(o.repeat):
            tag = f"w{k + 1}"
            alerts_topic = self.names.alerts(tag)
            load.create_topics(self.settings, [alerts_topic])
            spec = WorkerSpec(
                inputs=list(inputs.values()),
                alerts_topic=alerts_topic,
                deadletter_topic=self.names.deadletter(),
                group_id=self.names.group(tag),
                data_dir=self.workdir / tag / "state",
                log_path=self.workdir / f"{tag}.log",
                extra=o.rule_args,
            )
            (self.workdir / tag).mkdir(parents=True, exist_ok=True)
            self.say(f"worker #{k + 1}: starting (log {spec.log_path})")
            run = run_end_to_end(
                self.settings,
                spec,
                events=n,
                expected_alerts=expected,
                on_started=self._track_worker,
            )
            self.current_worker = None
            runs.append(run)
            if run.seconds is not None:
                worker_row.seconds.append(_all_events(run.seconds, n, run.events_in_at_t0))
            problems += self._check_run(k + 1, run, scenario.expected.alerts, expected)
            if run.events_in_at_t0 > 0.01 * n:
                self.warnings.append(
                    f"worker #{k + 1}: {run.events_in_at_t0:,.0f} events were read before"
                    " /healthz showed the assignment; its rate counts only the events after"
                )
            self.say(
                f"worker #{k + 1}: "
                + (
                    f"{n / _all_events(run.seconds, n, run.events_in_at_t0):,.0f} events/s"
                    if run.seconds
                    else "did not finish"
                )
                + f", alerts {run.tally.unique}/{expected}, duplicates {run.tally.duplicates},"
                f" start-up {run.startup_s:.1f} s"
            )
        processed_row = report.Row("  worker: all input read + sequenced (/metrics)", n)
        processed_row.seconds = [
            _all_events(r.processed_s, n, r.events_in_at_t0) for r in runs if r.processed_s
        ]
        done_row = report.Row("  worker: ingest stage read all input (/metrics)", n)
        done_row.seconds = [
            _all_events(r.ingest_done_s, n, r.events_in_at_t0) for r in runs if r.ingest_done_s
        ]
        worst = max(runs, key=lambda r: (abs(r.tally.unique - expected), r.tally.duplicates))
        cpu = [r.cpu_seconds / r.seconds for r in runs if r.cpu_seconds and r.seconds]
        worker_row.note = f"worker CPU {report.median(cpu):.2f} cores" if cpu else ""

        # (c) latency at a steady load
        lat: dict[str, Any] | None = None
        if o.latency_seconds > 0:
            lat = self._latency(problems)

        # (e) a storm of starts, kill -9 holding them, recovery, idle commits
        storm_row = report.Row("storm: MSBuild starts sequenced (state stage)", o.storm_starts)
        storms = [self._storm(k + 1, problems) for k in range(o.repeat if o.storm_starts else 0)]
        storm_row.seconds = [r.storm_s for r in storms]

        machine["loadavg_end"] = _loadavg()
        machine["kafka"] = (
            f"local Kafka {KAFKA_VERSION} on {self.settings.bootstrap}"
            if self.o.kafka is None
            else self.settings.bootstrap
        )
        rows = [parsed, raw, large, worker_row, processed_row, done_row, engine_row, *decode_rows]
        if storms:
            rows.append(storm_row)
        summary = report.summary(
            events=n,
            baseline=parsed,
            consume_only=raw,
            worker=worker_row,
            engine=engine_row,
            latency=lat,
            alerts_expected=expected,
            alerts_seen=worst.tally.unique,
            alert_duplicates=sum(r.tally.duplicates for r in runs),
            repeat=o.repeat,
            machine=machine,
            extra={
                "event_bytes_mean": round(mean_bytes, 1),
                "msbuild_share": o.msbuild_share,
                "disorder_ms": o.disorder_ms,
                "seed": o.seed,
                "rules": list(o.rules),
                "run_id": self.names.run_id,
                "baseline_large_fetch_events_per_s": report.round_or_none(large.events_per_s),
                "worker_runs": [self._run_json(r) for r in runs],
                "detect_engine_alerts": engine_alerts,
                "ingest_decode_per_record_events_per_s": report.round_or_none(
                    decode_rows[0].events_per_s
                ),
                "ingest_decode_batch_events_per_s": report.round_or_none(
                    decode_rows[1].events_per_s
                ),
                "worker_processed_events_per_s": report.round_or_none(processed_row.events_per_s),
                "worker_ingest_events_per_s": report.round_or_none(done_row.events_per_s),
                "storm": storm_summary(storms),
                "problems": problems,
                "warnings": self.warnings,
            },
        )
        summary["runs"]["alerts_seen"] = [r.tally.unique for r in runs]
        return BenchResult(
            summary=summary, rows=rows, ok=not problems, problems=problems, warnings=self.warnings
        )

    def _storm(self, k: int, problems: list[str]) -> StormRun:
        tag = f"storm{k}"
        names = {
            "process": f"{self.names.prefix}{tag}-process",
            "network": f"{self.names.prefix}{tag}-network",
            "alerts": self.names.alerts(tag),
            "deadletter": self.names.deadletter(),
            "group": self.names.group(tag),
        }
        self.say(f"storm #{k}: {self.o.storm_starts:,} starts waiting, then kill -9 and restart")
        run = run_storm(
            self.settings,
            starts=self.o.storm_starts,
            names=names,
            data_dir=self.workdir / tag / "state",
            log_path=self.workdir / f"{tag}.log",
            extra=self.o.rule_args,
            on_started=self._track_worker,
        )
        self.current_worker = None
        if run.lost or run.duplicated:
            problems.append(f"storm #{k}: {run.lost} alerts lost, {run.duplicated} duplicated")
        self.say(
            f"storm #{k}: {run.starts_per_s:,.0f} starts/s; after kill -9: ready"
            f" {run.restart_to_ready_s:.1f} s, all {run.alerts:,} alerts"
            f" {run.restart_to_all_alerts_s:.1f} s; committed {run.idle_commit_s:.2f} s after"
        )
        return run

    def _track_worker(self, worker: WorkerProcess) -> None:
        self.current_worker = worker

    @staticmethod
    def _check_run(k: int, run: WorkerRun, want: set[str], expected: int) -> list[str]:
        out = []
        got = {a.entity_id for a in run.tally.first.values()}
        if run.tally.unique != expected:
            out.append(
                f"worker #{k}: {run.tally.unique} alerts, expected {expected}"
                f" (missing {len(want - got)}, unexpected {len(got - want)})"
            )
        if run.tally.duplicates:
            out.append(f"worker #{k}: {run.tally.duplicates} duplicate alert deliveries")
        if run.stalled:
            out.append(f"worker #{k}: stalled before processing all input")
        return out

    @staticmethod
    def _run_json(run: WorkerRun) -> dict[str, Any]:
        m = run.metrics
        return {
            "seconds": None if run.seconds is None else round(run.seconds, 3),
            "alerts_seen": run.tally.unique,
            "alert_duplicates": run.tally.duplicates,
            "startup_s": round(run.startup_s, 2),
            "events_in_at_t0": run.events_in_at_t0,
            "ingest_done_s": None if run.ingest_done_s is None else round(run.ingest_done_s, 2),
            "cpu_seconds": None if run.cpu_seconds is None else round(run.cpu_seconds, 2),
            "processed_s": None if run.processed_s is None else round(run.processed_s, 2),
            "stalled": run.stalled,
            "incomplete": run.incomplete,
            "metrics": {
                k.removeprefix("seqwatch_"): m.get(k)
                for k in (
                    "seqwatch_events_in",
                    "seqwatch_dropped",
                    "seqwatch_forwarded",
                    "seqwatch_sequenced",
                    "seqwatch_alerts",
                    "seqwatch_deadlettered",
                    "seqwatch_late_events",
                    "seqwatch_duplicates",
                )
            },
            "timeline": run.timeline,
        }

    def _latency(self, problems: list[str]) -> dict[str, Any]:
        o = self.o
        inputs = self.names.inputs("lat")
        alerts_topic = self.names.alerts("lat")
        load.create_topics(self.settings, [*inputs.values(), alerts_topic, self.names.warmup()])
        bg_rate = max(0.0, o.rate - 2 * o.pair_rate)
        n_bg = int(o.latency_seconds * bg_rate)
        self.say(f"latency: generating {n_bg:,} background events")
        background = synth.generate(
            n_bg,
            seed=o.seed + 1,
            msbuild_share=0.0,
            event_bytes=o.event_bytes,
            start_ms=int(time.time() * 1000),
            events_per_second=max(bg_rate, 1.0),
        )
        if background.expected_alerts:
            problems.append(
                f"latency: the background stream has {background.expected_alerts} alerts"
            )
        spec = WorkerSpec(
            inputs=list(inputs.values()),
            alerts_topic=alerts_topic,
            deadletter_topic=self.names.deadletter(),
            group_id=self.names.group("lat"),
            data_dir=self.workdir / "lat" / "state",
            log_path=self.workdir / "lat.log",
            extra=o.rule_args,
        )
        (self.workdir / "lat").mkdir(parents=True, exist_ok=True)
        # The reader starts with the worker, as a user's alert consumer runs before the
        # alerts come: started after ready, its own first fetches (about 0.5 s) were
        # counted in the first alerts' latency (a worker used right at ready alerted within
        # 0.1 s of its first input, seen by a reader started before it).
        reader = AlertReader(self.settings, alerts_topic).start()
        try:
            producer = latency.warm_producer(
                self.settings, list(inputs.values()), self.names.warmup()
            )
            worker = spec.worker(self.settings).start()
        except BaseException:
            reader.stop()
            raise
        self.current_worker = worker
        run = latency.LatencyRun()
        try:
            worker.wait_ready()
            schedule = latency.plan(o.latency_seconds, o.rate, o.pair_rate, random.Random(o.seed))
            pairs = latency.PairFactory(o.seed + 2)
            self.say(
                f"latency: {o.rate:,.0f} events/s for {o.latency_seconds:.0f} s"
                f" ({o.pair_rate:.0f} MSBuild pairs/s), worker pid {worker.pid}"
            )
            latency.produce_paced(producer, schedule, background.records, inputs, pairs, run)
            latency.wait_for_alerts(reader, run.pairs_sent + background.expected_alerts)
            worker.check_alive()
        finally:
            latency.collect(run, reader.stop())
            worker.stop()
            self.current_worker = None
        out = latency.describe(run)
        if o.latency_samples is not None:
            o.latency_samples.write_bytes(orjson.dumps(run.samples))
        self.say(
            f"latency: {out['count']} alerts of {run.pairs_sent} pairs, p50 {out['p50_ms']} ms,"
            f" p99 {out['p99_ms']} ms; after the first {latency.SETTLE_S:.0f} s: p50"
            f" {out['settled_p50_ms']} ms, p99 {out['settled_p99_ms']} ms"
        )
        if out["alerts_seen"] != run.pairs_sent or out["unexpected_alerts"]:
            problems.append(
                f"latency: {out['alerts_seen']} alerts for {run.pairs_sent} pairs"
                f" ({out['unexpected_alerts']} unexpected)"
            )
        if out["alert_duplicates"]:
            problems.append(f"latency: {out['alert_duplicates']} duplicate alert deliveries")
        if run.late_sends:
            self.warnings.append(
                f"latency: {run.late_sends} sends more than 50 ms behind schedule (max"
                f" {run.max_lag_ms:.0f} ms): the bench process was short of CPU"
            )
        return out

    def _cleanup(self) -> None:
        if self.current_worker is not None:
            self.current_worker.stop()
        if not self.o.keep:
            try:
                deleted = load.delete_run(self.settings, self.names.prefix)
                self.say(f"deleted {len(deleted)} bench topics ({self.names.prefix}*)")
            except Exception as exc:  # clean-up must not hide the real error
                self.say(f"[yellow]could not delete the bench topics: {exc}[/yellow]")
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            self.say(f"kept topics {self.names.prefix}* and {self.workdir}")
        if self.started_broker and self.broker is not None:
            self.say(self.broker.down())


def print_result(result: BenchResult, console: Console, as_json: bool) -> None:
    import orjson

    s = result.summary
    m = s["machine"]
    title = (
        f"seqwatch bench: {s['events']:,} events (~{s['event_bytes_mean']:.0f} B,"
        f" {s['msbuild_share']:.1%} MSBuild), median of {s['repeat']},"
        f" {m['cpu_count']} CPUs"
    )
    out = Console(file=sys.stdout, width=max(console.width, 140))
    out.print(report.build_table(result.rows, s["baseline_events_per_s"], title))
    lat = s.get("latency") or {}
    if lat:
        out.print(
            f"detection latency at {lat.get('achieved_rate') or 0:,.0f} events/s:"
            f" p50 {lat.get('p50_ms')} ms, p99 {lat.get('p99_ms')} ms, max {lat.get('max_ms')} ms"
            f" over {lat.get('count')} alerts (worker engine completed the sequence at"
            f" p50 {lat.get('detected_p50_ms')} ms / p99 {lat.get('detected_p99_ms')} ms)"
        )
    storm = s.get("storm")
    if storm:
        out.print(
            f"storm of {storm['starts']:,} starts: {storm['starts_per_s']:,.0f} starts/s"
            f" sequenced (all committed after {storm['storm_committed_s']} s); kill -9 with them"
            f" pending: ready {storm['restart_to_ready_s']} s, first alert"
            f" {storm['restart_to_first_alert_s']} s, all alerts"
            f" {storm['restart_to_all_alerts_s']} s after the restart; everything committed"
            f" {storm['idle_commit_s']} s after the last alert"
        )
    out.print(
        f"alerts: {s['alerts_seen']} seen / {s['alerts_expected']} expected,"
        f" {s['alert_duplicates']} duplicates; ratio {s['ratio']}"
    )
    for problem in result.problems:
        out.print(f"[red]problem:[/red] {problem}")
    for warning in result.warnings:
        out.print(f"[yellow]warning:[/yellow] {warning}")
    if as_json:
        sys.stdout.flush()
        sys.stdout.write(orjson.dumps(s).decode() + "\n")
        sys.stdout.flush()


def storm_summary(runs: list[StormRun]) -> dict[str, Any] | None:
    """Medians of the storm phase's figures, and each run's."""
    if not runs:
        return None
    keys = (
        "starts_per_s",
        "storm_committed_s",
        "restart_to_ready_s",
        "restart_to_first_alert_s",
        "restart_to_all_alerts_s",
        "idle_commit_s",
    )
    each = [r.to_json() for r in runs]
    out: dict[str, Any] = {"starts": runs[0].starts}
    out.update({key: report.median([float(j[key]) for j in each]) for key in keys})
    out["runs"] = each
    return out


def _all_events(seconds: float, events: int, before_t0: float) -> float:
    """The time `events` take at the rate measured after t0: the ingest stage may read its
    first batch (up to 25,000 records) before /healthz shows its assignment, and those
    records must not count as read in no time."""
    return seconds * events / max(events - before_t0, 1.0)
