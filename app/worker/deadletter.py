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
