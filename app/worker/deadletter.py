"""What a dead-lettered record carries, so a person can find and replay its source."""

from __future__ import annotations

from app.engine import Reject, Source

TOMBSTONE = Reject("empty", "record has no value (tombstone)")


def deadletter_headers(
    reject: Reject, source: Source, timestamp: float | None
) -> list[tuple[str, bytes]]:
    headers = [
        ("seqwatch.reason", reject.reason.encode()),
        ("seqwatch.detail", reject.detail.encode("utf-8", "replace")[:1024]),
        ("seqwatch.source.topic", source.topic.encode()),
        ("seqwatch.source.partition", str(source.partition).encode()),
        ("seqwatch.source.offset", str(source.offset).encode()),
    ]
    if timestamp is not None:
        headers.append(("seqwatch.source.timestamp_ms", str(int(timestamp * 1000)).encode()))
    return headers


KEY_MAX_BYTES = 4_096


def bounded_deadletter(
    key: bytes | None, value: bytes, headers: list[tuple[str, bytes]], max_bytes: int
) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """The dead letter cut to what the dead-letter topic is sized for.

    Only a `too_large` record can exceed `max_bytes` (the dead-letter topic's declared
    limit less room for the rest: input topics are declared with the same limit, so only
    a topic configured larger sends one); it keeps its first `max_bytes` bytes and says
    how large it was (`seqwatch.truncated_from`); the whole record is still at its source
    coordinates. A
    key larger than 4 KiB is dropped the same way (`seqwatch.key_dropped`), so that no
    dead letter can be refused by the broker.
    """
    if len(value) > max_bytes:
        headers = [*headers, ("seqwatch.truncated_from", str(len(value)).encode())]
        value = value[:max_bytes]
    if key is not None and len(key) > KEY_MAX_BYTES:
        headers = [*headers, ("seqwatch.key_dropped", str(len(key)).encode())]
        key = None
    return key, value, headers
