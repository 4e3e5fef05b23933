"""The engine's knobs: one object for `seqwatch detect` and the worker alike, so an offline
backtest and the stream run the same semantics from the same defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.engine.mapping import Mapping
from app.errors import ConfigError
from app.options import duration_flag, flag


@dataclass(frozen=True)
class EngineSettings:
    ttl_ms: int = field(
        default=540_000,
        metadata=duration_flag("--ttl", "Longest start-to-network span, in event time."),
    )
    lateness_ms: int = field(
        default=60_000, metadata=duration_flag("--lateness", "Allowed disorder of event time.")
    )
    alert_cap: int = field(
        default=100,
        metadata=flag(
            "--alert-cap", "Alerts per --cap-window of event time (0 = unlimited).", kind=int
        ),
    )
    cap_window_ms: int = field(
        default=300_000, metadata=duration_flag("--cap-window", "Bucket of the alert cap.")
    )
    max_record_bytes: int = field(
        default=1_048_576,
        metadata=flag("--max-record-bytes", "Larger records are rejected (too_large).", kind=int),
    )
    mapping: Path | None = field(
        default=None,
        metadata=flag(
            "--mapping",
            "Elasticsearch index mapping (JSON) to read fields as that index does: aliases,"
            " null_value, version fields.",
            parse=Path,
        ),
    )
    idle_ms: int | None = field(
        default=None,
        metadata=duration_flag(
            "--idle",
            "A state partition without events this long (wall clock) releases what ordered"
            " sequences hold [default: --lateness].",
        ),
    )
    tiebreaker: str = field(
        default="event.sequence",
        metadata=flag(
            "--tiebreaker",
            "Field that orders events of equal time in sequences ('' = none), as in"
            " Elasticsearch's tiebreaker_field.",
        ),
    )
    source_skew_ms: int = 3_600_000
    """An input lagging the most advanced one by more than this stops holding the
    watermark back (docs/semantics.md, Watermark)."""

    def problems(self) -> list[str]:
        out = []
        if self.ttl_ms <= 0:
            out.append("--ttl must be positive")
        if self.lateness_ms < 0:
            out.append("--lateness must not be negative")
        if self.alert_cap < 0:
            out.append("--alert-cap must be 0 (unlimited) or more")
        if self.cap_window_ms < 0:
            out.append("--cap-window must not be negative")
        if self.mapping is not None and not self.mapping.is_file():
            out.append(f"--mapping {self.mapping}: no such file")
        if self.idle_ms is not None and self.idle_ms <= 0:
            out.append("--idle must be positive")
        if self.max_record_bytes < 1024:
            out.append("--max-record-bytes must be at least 1024")
        return out

    def load_mapping(self) -> Mapping | None:
        return Mapping.load(self.mapping) if self.mapping is not None else None

    def validate(self) -> EngineSettings:
        errors = self.problems()
        if errors:
            raise ConfigError("; ".join(errors))
        return self
