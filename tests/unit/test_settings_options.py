"""Settings are declared once: the CLI's options, defaults and variables come from them."""

from __future__ import annotations

import dataclasses

import pytest

from app.cli.detect import detect
from app.cli.worker import settings_from_environment, worker
from app.engine import EngineSettings
from app.options import flags_of
from app.worker.settings import WorkerSettings


def _options(command: object) -> dict[str, object]:
    return {p.name: p for p in command.params}  # type: ignore[attr-defined]


def test_every_worker_setting_is_an_option_whose_default_is_the_settings_default() -> None:
    options = _options(worker)
    for path, flag, _ in flags_of(WorkerSettings):
        option = options["__".join(path)]
        assert flag.name in option.opts  # type: ignore[attr-defined]
        assert option.envvar == flag.envvar  # type: ignore[attr-defined]
    # the defaults the command shows parse back to the dataclass's own
    ctx = worker.make_context("worker", [])
    assert ctx.params.pop("restart") is True
    from app.cli.options import pop_kafka_settings, settings_from

    built = settings_from(WorkerSettings, dict(ctx.params), kafka=pop_kafka_settings(ctx.params))
    assert built == WorkerSettings()


def test_detect_takes_the_engine_settings_the_worker_takes() -> None:
    skip = ("files", "rule_path", "rule_paths")
    detect_flags = {p.opts[0] for p in detect.params if p.name not in skip}
    engine_flags = {flag.name for _, flag, _ in flags_of(EngineSettings)}
    assert detect_flags == engine_flags
    worker_flags = {flag.name for _, flag, _ in flags_of(WorkerSettings)}
    assert engine_flags <= worker_flags


def test_a_variable_sets_a_nested_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQWATCH_TTL", "30s")
    monkeypatch.setenv("SEQWATCH_COMMIT_INTERVAL", "250ms")
    monkeypatch.setenv("SEQWATCH_INPUT_TOPICS", "a, b")
    settings = settings_from_environment()
    assert settings.engine.ttl_ms == 30_000
    assert settings.commit_interval_s == 0.25
    assert settings.input_topics == ("a", "b")
    assert (
        dataclasses.replace(
            settings,
            engine=EngineSettings(),
            commit_interval_s=0.1,
            input_topics=WorkerSettings().input_topics,
        )
        == WorkerSettings()
    )


def test_every_worker_flag_is_documented() -> None:
    from tests.helpers import ROOT

    text = (ROOT / "docs" / "operations.md").read_text()
    missing = [flag.name for _, flag, _ in flags_of(WorkerSettings) if f"`{flag.name}`" not in text]
    assert missing == []
