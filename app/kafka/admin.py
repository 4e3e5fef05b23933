"""Small, blocking admin helpers over confluent-kafka's AdminClient."""

from __future__ import annotations

import re
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
    """An admin client whose cluster has answered, or KafkaUnreachable with the reason.

    librdkafka retries a refused login or TLS handshake silently until the timeout and
    reports only "transport failure"; its error callback, served by poll(), knows why.
    So ask in short rounds and stop at the first authentication or TLS error.
    """
    errors: list[KafkaError] = []

    def on_error(err: KafkaError) -> None:
        errors.append(err)

    admin = AdminClient({**settings.confluent(), **QUIET, "error_cb": on_error})
    deadline = time.monotonic() + timeout
    while True:
        began = time.monotonic()
        try:
            metadata = admin.list_topics(timeout=max(0.1, min(1.0, deadline - began)))
        except KafkaException as exc:
            admin.poll(max(0.0, 0.2 - (time.monotonic() - began)))  # never a busy loop
            reason = _auth_reason(errors, settings)
            if reason is None and time.monotonic() < deadline:
                continue
            reason = reason or f"timed out after {timeout:.0f} s"
            raise KafkaUnreachable(
                f"cannot reach Kafka at {settings.bootstrap} ({reason})"
            ) from exc
        return admin, metadata


_RDKAFKA_NOISE = (
    re.compile(r"^\S+://\S+: "),  # "sasl_ssl://host:port/bootstrap: "
    re.compile(r" \(after \d+ms in state \w+\)$"),
    re.compile(r"error:[0-9A-F]{8}:SSL routines::"),
    re.compile(r", verify that ssl\.ca\.location .*$"),
)


def _auth_reason(errors: list[KafkaError], settings: KafkaSettings) -> str | None:
    """One short phrase for a refused login or TLS handshake; None for anything else."""
    for err in errors:
        if err.code() == KafkaError._AUTHENTICATION:
            text = _clean(err.str())
            text = re.sub(r"^SASL authentication error: ", "", text)
            text = re.sub(r"^Authentication failed(:| during authentication due to) ?", "", text)
            reason = f"authentication failed: {text}"
        elif err.code() == KafkaError._SSL:
            text = _clean(err.str()).replace("SSL handshake failed", "TLS handshake failed")
            if "certificate verify failed" in text:
                text += " (is --ssl-cafile the CA that signed the broker's certificate?)"
            reason = text
        else:
            continue
        if settings.sasl_password:  # librdkafka does not echo it; make sure of that
            reason = reason.replace(settings.sasl_password, "***")
        return reason[:300]
    return None


def _clean(text: str) -> str:
    for pattern in _RDKAFKA_NOISE:
        text = pattern.sub("", text)
    return text


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


def committed_offsets(admin: AdminClient, group: str, topic: str) -> dict[int, int]:
    """A consumer group's committed offsets of one topic, {partition: offset} (-1: none)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    metadata = admin.list_topics(topic=topic, timeout=10).topics[topic]
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, p) for p in metadata.partitions]
    )
    result = admin.list_consumer_group_offsets([request])[group].result(timeout=30)
    return {tp.partition: tp.offset for tp in result.topic_partitions}
