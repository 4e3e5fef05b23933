"""Fixtures shared by the engine unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from engine_helpers import shared_data


@pytest.fixture(scope="session")
def shared() -> Path:
    """The real recordings in tests/data (see its README for sources and licences)."""
    path = shared_data()
    assert (path / "security-datasets").is_dir(), f"recordings missing from {path}"
    return path


@pytest.fixture(scope="session")
def shared_dns_event(shared: Path) -> dict[str, Any]:
    """Elastic's sample Sysmon event 22 (ECS, no destination.ip)."""
    doc = orjson.loads((shared / "elastic" / "sysmon_operational_sample_event.json").read_bytes())
    assert isinstance(doc, dict)
    return doc
