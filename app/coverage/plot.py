"""The picture of a coverage report: an HTML page with inline SVG, or the SVG alone.

Two panels: the detection delays of the stream and of the schedule on one log-scale
axis, and a timeline of the runs' windows with every sequence either side found, the
missed ones marked with their reason. Hand-written SVG: no plotting library to install.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from app.coverage.report import RuleCoverage, table
from app.engine.timestamps import format_timestamp_ms

WIDTH = 960
COLOURS = {
    "stream": "#1f77b4",
    "schedule": "#ff7f0e",
    "both": "#2ca02c",
    "window": "#d62728",
    "ingest_delay": "#9467bd",
    "max_signals": "#8c564b",
}
ZOOM_WINDOWS = 48
_LOG_MIN, _LOG_MAX, _BINS = -1.0, 4.0, 30  # 0.1 s .. 10,000 s


def _histogram(delays_ms: list[int]) -> list[int]:
    counts = [0] * _BINS
    for ms in delays_ms:
        x = math.log10(max(ms, 1) / 1000)
        k = int((x - _LOG_MIN) / (_LOG_MAX - _LOG_MIN) * _BINS)
        counts[min(_BINS - 1, max(0, k))] += 1
    return counts


def _text(x: float, y: float, s: str, size: int = 12, anchor: str = "start") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"'
        f' font-family="sans-serif">{html.escape(s)}</text>'
    )


def svg(results: list[RuleCoverage], data: dict[str, Any]) -> str:
    left, plot_w = 70, WIDTH - 100
    out: list[str] = []
    # -- panel 1: delays ------------------------------------------------------------------
    top, height = 40, 170
    stream = _histogram([d for r in results for d in r.stream.values()])
    sched = _histogram([d for r in results for d in r.scheduled.values()])
    peak = max([1, *stream, *sched])
    out.append(_text(left, 24, "Detection delay: alert time minus the last event's time", 15))
    bar = plot_w / _BINS
    for k in range(_BINS):
        for j, (counts, name) in enumerate(((stream, "stream"), (sched, "schedule"))):
            h = counts[k] / peak * height
            if h:
                out.append(
                    f'<rect x="{left + k * bar + j * bar / 2:.1f}" y="{top + height - h:.1f}"'
                    f' width="{bar / 2 - 1:.1f}" height="{h:.1f}" fill="{COLOURS[name]}"/>'
                )
    out.append(
        f'<line x1="{left}" y1="{top + height}" x2="{left + plot_w}" y2="{top + height}"'
        ' stroke="#333"/>'
    )
    for label, seconds in (
        ("0.1 s", 0.1),
        ("1 s", 1),
        ("10 s", 10),
        ("1 min", 60),
        ("5 min", 300),
        ("1 h", 3600),
    ):
        x = left + (math.log10(seconds) - _LOG_MIN) / (_LOG_MAX - _LOG_MIN) * plot_w
        out.append(
            f'<line x1="{x:.1f}" y1="{top + height}" x2="{x:.1f}"'
            f' y2="{top + height + 5}" stroke="#333"/>'
        )
        out.append(_text(x, top + height + 18, label, 11, "middle"))
    s_d, c_d = data["stream"]["delay_s"], data["schedule"]["delay_s"]
    legend = [
        (f"seqwatch stream: {data['stream']['alerts']} alerts, p50 {_s(s_d['p50'])}", "stream"),
        (
            f"Kibana schedule: {data['schedule']['alerts']} alerts in {data['schedule']['runs']}"
            f" runs, p50 {_s(c_d['p50'])}",
            "schedule",
        ),
    ]
    for j, (label, name) in enumerate(legend):
        out.append(
            f'<rect x="{left + plot_w - 380}" y="{top + j * 18}" width="12"'
            f' height="12" fill="{COLOURS[name]}"/>'
        )
        out.append(_text(left + plot_w - 362, top + j * 18 + 11, label))
    out.append(_text(left - 8, top + 10, str(peak), 11, "end"))
    # -- panel 2: timeline -------------------------------------------------------------------
    t_top = top + height + 60
    sequences = [s for r in results for s in r.sequences]
    starts = sorted({s for r in results for s in r.runs})
    lookback = max(r.schedule.lookback_ms for r in results)
    lo = min([*(s["first_ms"] for s in sequences), starts[0] - lookback])
    hi = max([*(s["last_ms"] for s in sequences), starts[-1]])
    zoomed = ""
    if hi - lo > ZOOM_WINDOWS * lookback:
        # Years of samples would squash every window to a hair: show the stretch of
        # ZOOM_WINDOWS look-backs holding the most sequences (missed ones first).
        width = ZOOM_WINDOWS * lookback
        firsts = sorted(s["first_ms"] for s in sequences) or [starts[0]]
        missed_firsts = sorted(s["first_ms"] for s in sequences if s.get("reason"))
        pool = missed_firsts or firsts
        lo = max(pool, key=lambda c: sum(1 for f in pool if c - lookback <= f < c + width))
        lo -= lookback
        sequences = [s for s in sequences if lo <= s["first_ms"] and s["last_ms"] <= lo + width]
        hi = max([*(s["last_ms"] for s in sequences), lo + lookback]) + lookback
        starts = [t for t in starts if lo <= t <= hi]
        zoomed = f"zoomed to {len(sequences)} of the sequences: the recording spans more"
    span = max(hi - lo, 1)

    def x_of(ms: int) -> float:
        return left + (ms - lo) / span * plot_w

    missed = data["missed_by_reason"]
    out.append(
        _text(
            left,
            t_top - 12,
            "Runs, their windows, and the sequences: "
            + ", ".join(f"{v} missed ({k})" for k, v in missed.items()),
            14,
        )
    )
    if zoomed:
        out.append(_text(left + plot_w, t_top - 12 - 18, zoomed, 11, "end"))
    rows = 3
    for k, start in enumerate(starts):
        y = t_top + (k % rows) * 8
        x0 = max(float(left), x_of(start - lookback))
        out.append(
            f'<rect x="{x0:.1f}" y="{y}" height="6"'
            f' width="{max(1.0, x_of(start) - x0):.1f}"'
            ' fill="#ff7f0e" fill-opacity="0.25"/>'
        )
        out.append(
            f'<line x1="{x_of(start):.1f}" y1="{y - 2}" x2="{x_of(start):.1f}"'
            f' y2="{y + 8}" stroke="#ff7f0e"/>'
        )
    shown = sorted(sequences, key=lambda s: s["first_ms"])
    lane_top = t_top + rows * 8 + 14
    lanes = 40
    ends = [lo - 1] * lanes
    used = 1
    for seq in shown:
        kind = seq.get("reason") or seq["found_by"]
        lane = next((i for i in range(lanes) if ends[i] < seq["first_ms"]), seq_hash(seq) % lanes)
        used = max(used, lane + 1)
        ends[lane] = seq["last_ms"] + span // 200
        y = lane_top + lane * 6
        x1, x2 = x_of(seq["first_ms"]), x_of(seq["last_ms"])
        colour = COLOURS.get(kind, "#2ca02c")
        out.append(
            f'<line x1="{x1:.1f}" y1="{y}" x2="{max(x2, x1 + 2):.1f}" y2="{y}"'
            f' stroke="{colour}" stroke-width="3">'
            f"<title>{html.escape(seq['key'])}: {kind}</title></line>"
        )
        if kind in COLOURS and kind not in ("both", "stream", "schedule"):  # missed: mark it
            out.append(
                f'<path d="M{x1:.1f},{y - 4} l-5,-8 h10 z" fill="{colour}">'
                f"<title>missed: {kind}</title></path>"
            )
    t_bottom = lane_top + used * 6 + 10
    out.append(_text(left, t_bottom + 14, format_timestamp_ms(lo), 11))
    out.append(_text(left + plot_w, t_bottom + 14, format_timestamp_ms(hi), 11, "end"))
    for j, (name, label) in enumerate(
        (
            ("both", "found by both"),
            ("window", "missed: window"),
            ("ingest_delay", "missed: ingest delay"),
            ("max_signals", "missed: max_signals"),
        )
    ):
        x = left + j * 200
        out.append(
            f'<rect x="{x}" y="{t_bottom + 24}" width="12" height="12" fill="{COLOURS[name]}"/>'
        )
        out.append(_text(x + 16, t_bottom + 35, label))
    total = t_bottom + 50
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{total}"'
        f' viewBox="0 0 {WIDTH} {total}"><rect width="100%" height="100%" fill="white"/>'
        + "".join(out)
        + "</svg>"
    )


def seq_hash(seq: dict[str, Any]) -> int:
    return int(seq["alert_id"][:8], 16)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} s"


def write(path: Path, results: list[RuleCoverage], data: dict[str, Any]) -> None:
    picture = svg(results, data)
    if path.suffix == ".svg":
        path.write_text(picture)
        return
    names = ", ".join(html.escape(r["name"]) for r in data["rules"])
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>seqwatch coverage</title>"
        "</head><body style='font-family:sans-serif'>"
        f"<h1>What Kibana's schedule would have missed</h1><p>{names}</p>"
        f"{picture}<pre>{html.escape(table(data))}</pre></body></html>"
    )
