"""Small, blocking admin helpers over confluent-kafka's AdminClient."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from app.errors import KafkaUnreachable, SeqwatchError
from app.kafka.settings import KafkaSettings

QUIET = {"log_level": 0}
"""librdkafka prints connection failures to stderr itself; we report them as one line."""


def admin_client(settings: KafkaSettings) -> AdminClient:
    return AdminClient({**settings.confluent(), **QUIET})


def connect(settings: KafkaSettings, timeout: float = 10.0) -> tuple[AdminClient, ClusterMetadata]:
    """An admin client whose cluster has answered, or KafkaUnreachable with the reason."""
    errors: list[str] = []

    def on_error(err: KafkaError) -> None:
        errors.append(err.str())

    admin = AdminClient({**settings.confluent(), **QUIET, "error_cb": on_error})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        reason = _auth_reason(errors) or f"timed out after {timeout:.0f} s"
        raise KafkaUnreachable(f"cannot reach Kafka at {settings.bootstrap} ({reason})") from exc
    return admin, metadata


def _auth_reason(errors: list[str]) -> str | None:
    for text in errors:
        lowered = text.lower()
        if "authentication" in lowered or "ssl" in lowered or "certificate" in lowered:
            return text.split(": ", 1)[-1][:200]
    return None


def create_topic(
    admin: AdminClient,
    name: str,
    partitions: int,
    replication_factor: int = 1,
    config: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> bool:
    """Create a topic; False when it already existed. Waits until metadata shows it."""
    futures = admin.create_topics(
        [NewTopic(name, partitions, replication_factor, config=config or {})],
        operation_timeout=timeout,
    )
    try:
        futures[name].result(timeout=timeout)
        created = True
    except KafkaException as exc:
        err = exc.args[0]
        if err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise SeqwatchError(f"cannot create topic {name!r}: {err.str()}") from exc
        created = False
    wait_for_topic(admin, name, timeout=timeout)
    return created


def wait_for_topic(admin: AdminClient, name: str, timeout: float = 30.0) -> int:
    """Block until the topic's partitions all have leaders; return its partition count."""
    deadline = time.monotonic() + timeout
    while True:
        topic = admin.list_topics(topic=name, timeout=timeout).topics.get(name)
        if (
            topic is not None
            and topic.error is None
            and topic.partitions
            and all(p.leader >= 0 for p in topic.partitions.values())
        ):
            return len(topic.partitions)
        if time.monotonic() > deadline:
            raise SeqwatchError(f"topic {name!r} did not become available within {timeout:.0f} s")
        time.sleep(0.1)


def describe_configs(admin: AdminClient, names: list[str]) -> dict[str, dict[str, Any]]:
    """Topic configs as {topic: {key: ConfigEntry}}."""
    from confluent_kafka.admin import ConfigResource, ResourceType

    if not names:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, n) for n in names]
    result = admin.describe_configs(resources)
    return {res.name: fut.result() for res, fut in result.items()}


def delete_topics(admin: AdminClient, names: list[str], timeout: float = 30.0) -> None:
    if not names:
        return
    for name, future in admin.delete_topics(names, operation_timeout=timeout).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise SeqwatchError(f"cannot delete topic {name!r}: {exc.args[0].str()}") from exc
