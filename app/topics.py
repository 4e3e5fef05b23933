"""Topic declarations (`topics/topics.toml`) and how they compare with live topics.

Pure data and comparison: the admin calls live in `app.kafka.admin`, so the drift
logic can be tested without a broker.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from app.errors import ConfigError

ROLES = ("input", "alerts", "deadletter", "internal")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    role: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class LiveTopic:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


def default_spec_path() -> Path:
    """SEQWATCH_TOPICS, else ./topics/topics.toml, else the copy installed with seqwatch."""
    env = os.environ.get("SEQWATCH_TOPICS")
    if env:
        return Path(env)
    local = Path("topics/topics.toml")
    if local.exists():
        return local
    return Path(__file__).resolve().parent / "topics.toml"  # a link to topics/topics.toml


def load_specs(
    path: Path | None = None,
    replication_factor: int | None = None,
    group_id: str = "seqwatch",
) -> list[TopicSpec]:
    """The declared topics; `{group}` in a name is `group_id` (the worker's internal topics)."""
    path = path or default_spec_path()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"topic file {path} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"topic file {path}: {exc}") from exc
    defaults = data.get("defaults", {})
    rf = replication_factor or int(defaults.get("replication_factor", 1))
    specs = []
    for name, body in data.get("topics", {}).items():
        role = body.get("role")
        if role not in ROLES:
            raise ConfigError(
                f"topic file {path}: topic {name!r} has role {role!r}, not one of {ROLES}"
            )
        partitions = body.get("partitions")
        if not isinstance(partitions, int) or partitions < 1:
            raise ConfigError(f"topic file {path}: topic {name!r} needs partitions >= 1")
        specs.append(
            TopicSpec(
                name=name.replace("{group}", group_id),
                role=role,
                partitions=partitions,
                replication_factor=int(body.get("replication_factor", rf)),
                config={str(k): str(v) for k, v in body.get("config", {}).items()},
                description=str(body.get("description", "")),
            )
        )
    if not specs:
        raise ConfigError(f"topic file {path} declares no topics")
    return specs


def by_role(specs: list[TopicSpec], role: str) -> list[TopicSpec]:
    return [s for s in specs if s.role == role]


def drift(spec: TopicSpec, live: LiveTopic) -> list[str]:
    """Human-readable differences between a declaration and a live topic."""
    out = []
    if live.partitions != spec.partitions:
        out.append(f"partitions {live.partitions} (declared {spec.partitions})")
    if live.replication_factor != spec.replication_factor:
        out.append(
            f"replication factor {live.replication_factor} (declared {spec.replication_factor})"
        )
    for key, want in sorted(spec.config.items()):
        have = live.config.get(key)
        if have != want:
            out.append(f"{key}={have} (declared {want})")
    return out
