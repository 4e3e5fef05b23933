"""Shared duration parsing (app/durations.py)."""

from __future__ import annotations

import pytest

from app.durations import format_duration, parse_duration
from app.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("9m", 540_000),
        ("60s", 60_000),
        ("500ms", 500),
        ("1h", 3_600_000),
        ("2d", 172_800_000),
        ("1.5s", 1_500),
        (" 30S ", 30_000),
        ("0", 0),
        (0, 0),
    ],
)
def test_parse(text: str | int, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("bad", ["", "60", "9 minutes", "-1s", "1w", "m", 60, True])
def test_parse_rejects_with_one_line(bad: object) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration(bad, what="--ttl")  # type: ignore[arg-type]
    assert str(caught.value).startswith("invalid --ttl")


@pytest.mark.parametrize(("ms", "text"), [(540_000, "9m"), (1_500, "1500ms"), (0, "0ms")])
def test_format(ms: int, text: str) -> None:
    assert format_duration(ms) == text
