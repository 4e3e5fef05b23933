"""Shared fixtures: a real local Kafka for the integration tests, and CLI runners."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def kafka() -> Iterator[object]:
    """Settings for a running broker: $SEQWATCH_TEST_BOOTSTRAP, else our own on port 29092.

    A broker this session started is stopped at its end; one that was already running
    (a developer's) is left alone.
    """
    from app.kafka.settings import KafkaSettings
    from devtools.kafka import LocalKafka

    bootstrap = os.environ.get("SEQWATCH_TEST_BOOTSTRAP")
    if bootstrap:
        yield KafkaSettings(bootstrap=bootstrap)
        return
    broker = LocalKafka(port=int(os.environ.get("SEQWATCH_TEST_KAFKA_PORT", "29092")))
    started = broker.pid() is None
    print(broker.up(timeout=180), file=sys.stderr)
    try:
        yield KafkaSettings(bootstrap=broker.bootstrap)
    finally:
        if started:
            broker.down()


@pytest.fixture
def unique() -> str:
    """A short unique suffix, so tests never share topics or groups."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def windows_rules(tmp_path_factory: pytest.TempPathFactory) -> object:
    """elastic/detection-rules' rules/windows (tests/data/elastic), unpacked once."""
    import tarfile

    from tests.helpers import ROOT

    folder = tmp_path_factory.mktemp("detection-rules")
    with tarfile.open(
        ROOT / "tests" / "data" / "elastic" / "detection-rules-windows.tar.gz"
    ) as tar:
        tar.extractall(folder, filter="data")
    return folder / "rules" / "windows"
