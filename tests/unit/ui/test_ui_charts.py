"""The inline SVG charts: values drawn, text escaped, empty inputs said in words."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from cva_tasks.ui import charts
from cva_tasks.ui.charts import Series

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    return root


def rects(root: ET.Element) -> list[ET.Element]:
    return root.findall(f".//{SVG}rect")


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


@pytest.mark.parametrize(
    ("low", "high", "count", "expected"),
    [
        (0, 10, 5, [0, 2, 4, 6, 8, 10]),
        (0, 7, 5, [0, 2, 4, 6, 8]),
        (0.931, 0.934, 4, [0.931, 0.932, 0.933, 0.934]),
        (0, 1, 4, [0, 0.25, 0.5, 0.75, 1.0]),
        (5, 5, 4, [4, 6, 8, 10]),  # a flat range is widened, never divided by zero
    ],
)
def test_nice_ticks_cover_the_range_in_round_steps(low, high, count, expected):
    assert charts.nice_ticks(low, high, count) == pytest.approx(expected)


def test_bar_chart_draws_one_bar_per_item_proportional_to_its_value():
    root = parse(
        charts.bar_chart([("Loyal", 100), ("New", 50), ("Lost", 0)], chart_id="x", title="t")
    )
    bars = rects(root)
    assert len(bars) == 3
    widths = [float(b.get("width")) for b in bars]
    assert widths[0] == pytest.approx(2 * widths[1]) and widths[2] == 0
    assert {"Loyal", "New", "Lost", "100", "50", "0"} <= set(texts(root))
    assert root.get("data-chart") == "x" and root.find(f"{SVG}title").text == "t"


def test_bar_chart_marker_is_drawn_where_its_value_is():
    root = parse(
        charts.bar_chart(
            [("a", 0.4), ("b", 0.1)], chart_id="psi", title="t", marker=(0.2, "threshold")
        )
    )
    line = root.find(f"{SVG}line")
    bar_a = rects(root)[0]
    x0 = float(bar_a.get("x"))
    assert float(line.get("x1")) - x0 == pytest.approx(float(bar_a.get("width")) / 2, abs=0.2)
    assert "threshold" in texts(root)


def test_text_from_the_warehouse_is_escaped():
    svg = charts.bar_chart([("<script>alert(1)</script>", 3)], chart_id="s", title="<b>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    parse(svg)


def test_histogram_has_a_bar_per_bin_and_one_for_the_overflow():
    bins = [(i * 10.0, (i + 1) * 10.0, n) for i, n in enumerate([5, 9, 3, 0])]
    root = parse(charts.histogram(bins, chart_id="clv", title="t", overflow=("> 40", 2)))
    bars = rects(root)
    assert len(bars) == 5
    heights = [float(b.get("height")) for b in bars]
    assert heights[1] == max(heights) and heights[3] == 0
    assert heights[4] == pytest.approx(heights[0] * 2 / 5)
    assert "> 40" in texts(root)


def test_line_chart_leaves_gaps_and_marks_hollow_points():
    day = date(2025, 12, 1)
    series = Series(
        "new model",
        [
            (day, 0.7),
            (day + timedelta(1), 0.72),
            (day + timedelta(2), None),
            (day + timedelta(3), 0.71),
        ],
        hollow=[False, True, False, False],
    )
    root = parse(charts.line_chart([series], chart_id="m", title="t"))
    lines = root.findall(f".//{SVG}polyline")
    assert len(lines) == 1 and len(lines[0].get("points").split()) == 2  # the gap splits it
    circles = root.findall(f".//{SVG}circle")
    assert [c.get("fill") for c in circles] == [series.color, "#ffffff", series.color]


def test_line_chart_puts_higher_values_higher():
    day = date(2025, 12, 1)
    root = parse(
        charts.line_chart(
            [Series("s", [(day, 1.0), (day + timedelta(5), 3.0)])], chart_id="m", title="t"
        )
    )
    low, high = root.findall(f".//{SVG}circle")
    assert float(high.get("cy")) < float(low.get("cy"))
    assert float(high.get("cx")) > float(low.get("cx"))


def test_day_labels_do_not_crowd():
    days = [date(2025, 12, 1) + timedelta(d) for d in (0, 1, 2, 3, 4, 5, 6, 8, 9)]
    root = parse(
        charts.line_chart([Series("s", [(d, 1.0) for d in days])], chart_id="m", title="t")
    )
    labels = [t for t in root.iter(f"{SVG}text") if re.fullmatch(r"[A-Z][a-z]{2} \d\d", t.text)]
    xs = [float(t.get("x")) for t in labels]
    assert len(xs) >= 3 and labels[-1].text == "Dec 10"
    assert all(b - a >= 56 for a, b in itertools.pairwise(xs))


def test_stacked_bars_stack_the_second_series_on_the_first():
    days = [date(2025, 12, 1), date(2025, 12, 2)]
    root = parse(
        charts.stacked_bars(
            days,
            [("clean", "#00f", [10.0, 8.0]), ("quarantined", "#f00", [0.0, 2.0])],
            chart_id="dq",
            title="t",
        )
    )
    bars = [b for b in rects(root) if b.find(f"{SVG}title") is not None]
    assert len(bars) == 3  # a zero value draws nothing
    clean_2, quarantined_2 = bars[1], bars[2]
    top_of_clean = float(clean_2.get("y"))
    assert float(quarantined_2.get("y")) + float(quarantined_2.get("height")) == pytest.approx(
        top_of_clean, abs=0.2
    )


@pytest.mark.parametrize(
    "draw",
    [
        lambda: charts.bar_chart([], chart_id="e", title="t"),
        lambda: charts.histogram([], chart_id="e", title="t"),
        lambda: charts.line_chart([Series("s", [])], chart_id="e", title="t"),
        lambda: charts.stacked_bars([], [], chart_id="e", title="t"),
    ],
)
def test_an_empty_chart_says_so(draw):
    root = parse(draw())
    assert not rects(root)
    assert any(text.startswith("no ") for text in texts(root))
