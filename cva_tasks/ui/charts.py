"""Charts as inline SVG, drawn on the server: no JavaScript, nothing fetched.

Four kinds cover the page: horizontal bars (segments, clusters, tiers, PSI per
feature), a histogram (CLV), lines over days (model metrics, failing shares, drift)
and stacked bars over days (rows per source entity). Every chart is one ``<svg
class="chart" data-chart="<id>">`` with a ``<title>`` (read by screen readers and
shown as a tooltip), labelled values and a fixed ``viewBox`` that scales to its box.
All text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from html import escape

#: Colours that stay apart for the common colour-vision deficiencies (Okabe-Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
TEXT = "#1f2933"
MUTED = "#616e7c"
GRID = "#e4e7eb"
WIDTH = 560
FONT = 12


def number(value: float | None, digits: int = 0) -> str:
    """``1,234`` / ``1,234.5``; an em dash for None."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:,.{digits}f}"


def compact(value: float) -> str:
    """Axis labels: ``950``, ``1.2k``, ``3.4M``, ``0.25``."""
    size = abs(value)
    if size >= 1e6:
        return f"{value / 1e6:.3g}M"
    if size >= 1e4:
        return f"{value / 1e3:.3g}k"
    if size >= 1 or size == 0:
        return f"{value:,.4g}"
    return f"{value:.2g}"


def percent(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round axis ticks covering ``[low, high]`` in steps of 1, 2, 2.5 or 5 x 10^n."""
    if not high > low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step + 1e-9) * step
    ticks = [first]
    while ticks[-1] < high - step * 1e-9:
        ticks.append(round(first + len(ticks) * step, 12))
    return ticks


def spread(count: int, most: int = 6) -> list[int]:
    """Indexes of at most ``most`` evenly spread labels among ``count`` (first and last in)."""
    if count <= most:
        return list(range(count))
    return sorted({round(k * (count - 1) / (most - 2)) for k in range(most - 1)})


def _svg(chart_id: str, title: str, width: float, height: float, body: list[str]) -> str:
    size = f'width="{math.ceil(width)}" height="{math.ceil(height)}"'
    return (
        f'<svg class="chart" data-chart="{escape(chart_id)}" viewBox="0 0 {math.ceil(width)} '
        f'{math.ceil(height)}" {size} role="img" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="system-ui, sans-serif" font-size="{FONT}" fill="{TEXT}">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def _text(x: float, y: float, content: str, anchor: str = "start", **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(content)}</text>'


def _clip(label: str, width: int) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def empty_chart(chart_id: str, title: str, message: str, width: float = WIDTH) -> str:
    """A chart box that says why there is nothing to draw."""
    return _svg(
        chart_id,
        title,
        width,
        60,
        [_text(width / 2, 34, message, "middle", fill=MUTED, font_style="italic")],
    )


def bar_chart(
    items: Sequence[tuple[str, float]],
    *,
    chart_id: str,
    title: str,
    width: float = WIDTH,
    value_label: Callable[[float], str] = number,
    colors: Sequence[str] | None = None,
    marker: tuple[float, str] | None = None,
) -> str:
    """Horizontal bars, one per ``(label, value)``, each labelled with its value.

    Args:
        colors: one colour per bar (default: the first of the palette for all).
        marker: ``(value, label)`` of a vertical reference line (e.g. a threshold).
    """
    if not items:
        return empty_chart(chart_id, title, "no rows for this day", width)
    longest = max(len(_clip(label, 30)) for label, _ in items)
    left, right, row, top = min(max(90.0, 16 + 7.0 * longest), 230.0), 100.0, 26.0, 8.0
    span = width - left - right
    highest = max([v for _, v in items] + ([marker[0]] if marker else []))
    scale = span / highest if highest > 0 else 0.0
    body = []
    for i, (label, value) in enumerate(items):
        y = top + i * row
        bar = max(value * scale, 0.0)
        color = colors[i % len(colors)] if colors else PALETTE[0]
        body.append(_text(left - 8, y + 16, _clip(label, 30), "end"))
        body.append(
            f'<rect x="{left:.1f}" y="{y + 4:.1f}" width="{bar:.1f}" height="{row - 8:.1f}" '
            f'rx="2" fill="{color}"><title>{escape(label)}: {escape(value_label(value))}'
            "</title></rect>"
        )
        body.append(_text(left + bar + 6, y + 16, value_label(value), fill=MUTED))
    height = top + len(items) * row + (22 if marker else 6)
    if marker:
        x = left + marker[0] * scale
        body.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{height - 18:.1f}" '
            f'stroke="#D55E00" stroke-width="1.5" stroke-dasharray="4 3"/>'
        )
        body.append(_text(x, height - 5, marker[1], "middle", fill="#D55E00"))
    return _svg(chart_id, title, width, height, body)


def histogram(
    bins: Sequence[tuple[float, float, int]],
    *,
    chart_id: str,
    title: str,
    width: float = WIDTH,
    overflow: tuple[str, int] | None = None,
    x_label: str = "",
) -> str:
    """Vertical bars of counts per ``(low, high, count)`` bin, with a y axis of counts.

    Args:
        overflow: ``(label, count)`` of one last bar for the values past the last bin.
        x_label: the axis caption under the bins.
    """
    if not bins:
        return empty_chart(chart_id, title, "no values for this day", width)
    left, right, top, bottom = 52.0, 12.0, 12.0, 46.0
    height = 240.0
    slots = len(bins) + (1.4 if overflow else 0)
    slot = (width - left - right) / slots
    counts = [c for _, _, c in bins] + ([overflow[1]] if overflow else [])
    ticks = nice_ticks(0, max(max(counts), 1), 4)
    plot = height - top - bottom
    y_of = lambda v: top + plot * (1 - v / ticks[-1])  # noqa: E731
    body = _y_axis(ticks, y_of, left, width - right, compact)
    for i, (low, high, count) in enumerate(bins):
        x = left + i * slot
        body.append(
            f'<rect x="{x + 1:.1f}" y="{y_of(count):.1f}" width="{slot - 2:.1f}" '
            f'height="{top + plot - y_of(count):.1f}" fill="{PALETTE[0]}"><title>'
            f"{escape(number(low))} to {escape(number(high))}: {count:,} customers"
            "</title></rect>"
        )
    every = max(1, math.ceil(len(bins) / 6))
    for i in range(0, len(bins) + (0 if overflow else 1), every):
        edge = bins[i][0] if i < len(bins) else bins[-1][1]
        body.append(_text(left + i * slot, top + plot + 16, compact(edge), "middle", fill=MUTED))
    if overflow:
        x = left + (len(bins) + 0.4) * slot
        label, count = overflow
        body.append(
            f'<rect x="{x:.1f}" y="{y_of(count):.1f}" width="{slot:.1f}" '
            f'height="{top + plot - y_of(count):.1f}" fill="{PALETTE[1]}"><title>'
            f"{escape(label)}: {count:,} customers</title></rect>"
        )
        body.append(_text(x + slot / 2, top + plot + 16, label, "middle", fill=MUTED))
    if x_label:
        body.append(_text((left + width - right) / 2, height - 8, x_label, "middle", fill=MUTED))
    return _svg(chart_id, title, width, height, body)


@dataclass
class Series:
    """One line of a :func:`line_chart`.

    Attributes:
        name: legend text.
        points: ``(day, value)``; a None value leaves a gap.
        color: stroke colour.
        hollow: per point, True draws it as an open circle (e.g. a model not promoted).
        dashed: a dashed line (e.g. the champion a new model was compared with).
    """

    name: str
    points: list[tuple[date, float | None]]
    color: str = PALETTE[0]
    hollow: list[bool] = field(default_factory=list)
    dashed: bool = False


def line_chart(
    series: Sequence[Series],
    *,
    chart_id: str,
    title: str,
    width: float = WIDTH,
    y_format: Callable[[float], str] = compact,
    reference: tuple[float, str] | None = None,
    y_floor: float | None = None,
    height: float = 200.0,
) -> str:
    """Values over days, one line per series, with a legend, a y axis and day labels.

    Args:
        reference: ``(value, label)`` of a horizontal dashed line (e.g. a threshold).
        y_floor: the lowest y value shown at least (e.g. 0 for shares).
    """
    values = [v for s in series for _, v in s.points if v is not None]
    days = sorted({d for s in series for d, _ in s.points})
    if not values:
        return empty_chart(chart_id, title, "no values up to this day", width)
    left, right, top, bottom = 52.0, 16.0, 30.0, 26.0
    low = min(values + ([reference[0]] if reference else []))
    high = max(values + ([reference[0]] if reference else []))
    if y_floor is not None:
        low = min(low, y_floor)
    if high - low < 1e-9:
        pad = abs(high) * 0.1 or 1.0
        low, high = (low - pad, high + pad) if y_floor is None else (low, high + pad)
    ticks = nice_ticks(low, high, 4)
    plot = height - top - bottom
    y_of = lambda v: top + plot * (1 - (v - ticks[0]) / (ticks[-1] - ticks[0]))  # noqa: E731
    first, last = days[0], days[-1]
    span = max((last - first).days, 1)
    inner = width - left - right - 16

    def x_of(day: date) -> float:
        if first == last:
            return left + 8 + inner / 2
        return left + 8 + inner * (day - first).days / span

    body = _y_axis(ticks, y_of, left, width - right, y_format)
    last_x = -math.inf
    for day in (days[i] for i in spread(len(days))):
        if x_of(day) - last_x >= 56 or day == last:  # days are not evenly spaced
            if day == last and x_of(day) - last_x < 56:
                body.pop()  # the last day's label wins over a too-close one before it
            body.append(_text(x_of(day), height - 8, day.strftime("%b %d"), "middle", fill=MUTED))
            last_x = x_of(day)
    if reference:
        y = y_of(reference[0])
        body.append(
            f'<line x1="{left:.1f}" x2="{width - right:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#D55E00" stroke-width="1.5" stroke-dasharray="4 3"/>'
        )
        body.append(_text(width - right - 2, y - 4, reference[1], "end", fill="#D55E00"))
    legend_x = left
    for s in series:
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        body.append(
            f'<line x1="{legend_x:.1f}" x2="{legend_x + 16:.1f}" y1="12" y2="12" '
            f'stroke="{s.color}" stroke-width="2.5"{dash}/>'
        )
        body.append(_text(legend_x + 21, 16, _clip(s.name, 34)))
        legend_x += 36 + 7 * min(len(s.name), 34)
    for s in series:
        body.extend(_line(s, x_of, y_of, y_format))
    return _svg(chart_id, title, width, height, body)


def _line(
    s: Series,
    x_of: Callable[[date], float],
    y_of: Callable[[float], float],
    y_format: Callable[[float], str],
) -> list[str]:
    parts: list[str] = []
    run: list[tuple[float, float]] = []
    dash = ' stroke-dasharray="5 3"' if s.dashed else ""
    ends: list[tuple[date | None, float | None]] = [*s.points, (None, None)]
    for day, value in ends:
        if value is None or day is None:
            if len(run) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                parts.append(
                    f'<polyline points="{path}" fill="none" stroke="{s.color}" '
                    f'stroke-width="2"{dash}/>'
                )
            run = []
            continue
        run.append((x_of(day), y_of(value)))
    for i, (day, value) in enumerate(s.points):
        if value is None:
            continue
        hollow = i < len(s.hollow) and s.hollow[i]
        fill = "#ffffff" if hollow else s.color
        parts.append(
            f'<circle cx="{x_of(day):.1f}" cy="{y_of(value):.1f}" r="4" fill="{fill}" '
            f'stroke="{s.color}" stroke-width="2"><title>{escape(s.name)} '
            f"{day.isoformat()}: {escape(y_format(value))}</title></circle>"
        )
    return parts


def stacked_bars(
    days: Sequence[date],
    stacks: Sequence[tuple[str, str, Sequence[float]]],
    *,
    chart_id: str,
    title: str,
    width: float = WIDTH,
    height: float = 150.0,
) -> str:
    """Bars per day, stacked from the first ``(name, colour, values)`` up, with a legend."""
    if not days:
        return empty_chart(chart_id, title, "no validations up to this day", width)
    left, right, top, bottom = 52.0, 12.0, 28.0, 24.0
    totals = [sum(values[i] for _, _, values in stacks) for i in range(len(days))]
    ticks = nice_ticks(0, max(max(totals), 1), 3)
    plot = height - top - bottom
    y_of = lambda v: top + plot * (1 - v / ticks[-1])  # noqa: E731
    slot = (width - left - right) / max(len(days), 1)
    bar = min(slot * 0.8, 40)
    body = _y_axis(ticks, y_of, left, width - right, compact)
    legend_x = left
    for name, color, _ in stacks:
        body.append(f'<rect x="{legend_x:.1f}" y="6" width="11" height="11" fill="{color}"/>')
        body.append(_text(legend_x + 16, 16, name))
        legend_x += 30 + 7 * len(name)
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar) / 2
        base = 0.0
        for name, color, values in stacks:
            value = values[i]
            if value > 0:
                y = y_of(base + value)
                body.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                    f'height="{y_of(base) - y:.1f}" fill="{color}"><title>{day.isoformat()} '
                    f"{escape(name)}: {value:,.0f}</title></rect>"
                )
            base += value
    for i in spread(len(days)):
        label = days[i].strftime("%b %d")
        body.append(_text(left + (i + 0.5) * slot, height - 8, label, "middle", fill=MUTED))
    return _svg(chart_id, title, width, height, body)


def _y_axis(
    ticks: Sequence[float],
    y_of: Callable[[float], float],
    left: float,
    right: float,
    label: Callable[[float], str],
) -> list[str]:
    body = []
    for tick in ticks:
        y = y_of(tick)
        body.append(
            f'<line x1="{left:.1f}" x2="{right:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{GRID}" stroke-width="1"/>'
        )
        body.append(_text(left - 6, y + 4, label(tick), "end", fill=MUTED))
    return body
