"""Fixtures shared by the engine unit tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from engine_helpers import shared_data


@pytest.fixture(scope="session")
def shared() -> Path:
    """The real recordings in ../shared/data: required in CI, optional on a laptop clone."""
    path = shared_data()
    if not path.is_dir():
        message = f"shared sample data not found at {path} (set SEQWATCH_SHARED_DATA)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_dns_event(shared: Path) -> dict[str, Any]:
    """Elastic's sample Sysmon event 22 (ECS, no destination.ip)."""
    doc = orjson.loads((shared / "elastic" / "sysmon_operational_sample_event.json").read_bytes())
    assert isinstance(doc, dict)
    return doc
