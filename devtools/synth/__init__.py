"""Seeded generator of realistic Windows endpoint telemetry, as shippers put it on Kafka.

Why: the benchmark needs hundreds of thousands of events with a known answer, and tests need
the same shapes the engine meets in production (docs/semantics.md, Inputs), without shipping large
recordings. Every record is a JSON object in one of these shapes:

- ``winlogbeat7``: Winlogbeat 7.x with its Sysmon module (ECS, nested, ``@metadata``), topic
  ``winlogbeat``; ``@timestamp`` is Sysmon's UtcTime, ``event.created`` the shipper's time.
- ``winlogbeat8``: Winlogbeat 8.x raw output (ECS mapping happens in Elasticsearch, not here):
  ``winlog.event_id`` and ``event.code`` are strings, Sysmon fields under ``winlog.event_data``.
- ``winlogbeat6``: Winlogbeat 6.x raw output (top-level ``event_id``, ``event_data``,
  ``computer_name``; ``host.name`` is the event collector).
- ``nxlog``: NXLog im_msvistalog through Logstash, flat Sysmon fields; ``@timestamp`` is
  pipeline time. Published on ``winlogbeat`` too, as the security-datasets pipeline did.
- ``endpoint``: Elastic Defend through Elastic Agent's Kafka output, topics
  ``logs-endpoint.events.process`` and ``logs-endpoint.events.network``; ``@timestamp`` has 7
  fractional digits and entity ids are base64.

The expected alerts of "MsBuild Making Network Connections" are computed exactly while
generating: one alert per MSBuild start with a qualifying network event of the same entity id
(any destination except exactly 127.0.0.1 / ::1 / ::ffff:127.0.0.1, or none at all as in a DNS
query) whose millisecond event time lies in [start, start + ttl].
"""

from __future__ import annotations

import time
from typing import Any

from devtools.synth.catalog import IMAGES, MSBUILD_FRAMEWORK, MSBUILD_VS
from devtools.synth.common import (
    DEFAULT_SHAPES,
    RULE,
    SHAPES,
    TOPIC_NETWORK,
    TOPIC_PROCESS,
    TOPIC_WINLOGBEAT,
    TTL_MS,
    iso_ms,
)
from devtools.synth.hosts import Host, Proc, make_host, make_proc, populate_host
from devtools.synth.oracle import reference_alerts, rule_view
from devtools.synth.render import (
    render_dns,
    render_image_load,
    render_network,
    render_process_end,
    render_process_start,
)
from devtools.synth.stream import Expected, Record, Scenario, Synth, background_event

__all__ = [
    "DEFAULT_SHAPES",
    "IMAGES",
    "MSBUILD_FRAMEWORK",
    "MSBUILD_VS",
    "RULE",
    "SHAPES",
    "TOPIC_NETWORK",
    "TOPIC_PROCESS",
    "TOPIC_WINLOGBEAT",
    "TTL_MS",
    "Expected",
    "Host",
    "Proc",
    "Record",
    "Scenario",
    "Synth",
    "background_event",
    "generate",
    "iso_ms",
    "iter_records",
    "make_host",
    "make_proc",
    "populate_host",
    "reference_alerts",
    "render_dns",
    "render_image_load",
    "render_network",
    "render_process_end",
    "render_process_start",
    "rule_view",
]


# --------------------------------------------------------------------------- entry points


def iter_records(n_events: int, *, seed: int, **kwargs: Any) -> Synth:
    """Streaming form: iterate for records, then read `.expected` (see `Synth`)."""
    return Synth(n_events, seed=seed, **kwargs)


def generate(
    n_events: int,
    *,
    seed: int,
    msbuild_share: float = 0.01,
    event_bytes: int = 600,
    disorder_ms: int = 0,
    start_ms: int | None = None,
    **kwargs: Any,
) -> Scenario:
    """Materialised form: all records in arrival order plus the exact expected alerts."""
    s = Synth(
        n_events,
        seed=seed,
        msbuild_share=msbuild_share,
        event_bytes=event_bytes,
        disorder_ms=disorder_ms,
        start_ms=start_ms,
        **kwargs,
    )
    records = list(s)
    return Scenario(records=records, expected=s.expected)


def _main() -> None:  # pragma: no cover - manual speed check
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    t0 = time.perf_counter()
    s = Synth(n, seed=1)
    total = 0
    for r in s:
        total += len(r.value)
    dt = time.perf_counter() - t0
    print(
        f"{n} events in {dt:.2f} s = {n / dt:,.0f} events/s,"
        f" mean {total / max(1, s.records_total):.0f} B,"
        f" expected alerts {s.expected.expected_alerts}, msbuild events {s.expected.msbuild_events}"
    )


if __name__ == "__main__":  # pragma: no cover
    _main()
