"""The bench's many-rules set: Elastic's rule shape once per binary, each loading as a
streaming rule of its own (its own rule id, its own binary in the query)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engine.rule import load_rules
from devtools.bench.rulesets import BINARIES, write_rules


def test_every_generated_rule_loads_with_an_id_and_a_binary_of_its_own(tmp_path: Path) -> None:
    paths = write_rules(tmp_path, len(BINARIES))
    assert all(f'"{b}"' in p.read_text() for b, p in zip(BINARIES, paths, strict=True))
    loaded = load_rules([tmp_path], stream=True)
    assert not loaded.refused and len(loaded.rules) == len(BINARIES)
    assert len({rule.rule_id for rule in loaded.rules}) == len(BINARIES)
    names = sorted(rule.name for rule in loaded.rules)
    assert names == sorted(f"{b} Making Network Connections" for b in BINARIES)


def test_a_count_beyond_the_binaries_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="between 1 and"):
        write_rules(tmp_path, len(BINARIES) + 1)
