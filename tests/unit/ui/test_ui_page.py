"""The page's HTML and the Data Docs file resolution, without a server."""

from __future__ import annotations

import copy
import os
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cva_tasks.lake import Lake
from cva_tasks.ui import figures, page
from cva_tasks.ui.reader import WarehouseReader
from cva_tasks.ui.sample import publish_sample_days
from cva_tasks.warehouse import EmbeddedWarehouse

DAYS = [date(2025, 12, 1) + timedelta(days=i) for i in range(4)]
CHARTS = {
    "segments",
    "clusters",
    "churn-tiers",
    "clv",
    "dq-failing-share",
    "drift-history",
    "audience-sizes",
    *(f"model-{kind}" for kind in ("clv", "clusters", "churn", "recommender", "sentiment")),
    *(
        f"dq-rows-{name}"
        for name in (
            "demo_shop-transactions",
            "demo_shop-customers",
            "demo_shop-items",
            "demo_feedback-feedback",
        )
    ),
}


class Elements(HTMLParser):
    """Every start tag with its attributes; fails on nothing, so checks are explicit."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(html)
    return parser.tags


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    lake = Lake(str(root / "lake"))
    publish_sample_days(
        EmbeddedWarehouse(root / "w.duckdb"), lake, DAYS, data_docs_dir=root / "docs"
    )
    reader = WarehouseReader(EmbeddedWarehouse(root / "w.duckdb", auto_migrate=False))
    return figures.day_report(
        reader, DAYS[1], lake=lake, data_docs_dir=root / "docs", psi_threshold=0.2
    )


def test_the_day_page_has_every_chart_and_loads_nothing(report):
    html = page.day_page(report, [d.isoformat() for d in reversed(DAYS)], "DuckDB file w")
    tags = elements(html)
    charts = {a["data-chart"] for t, a in tags if t == "svg"}
    assert charts == CHARTS | {"drift-features"}
    assert not [t for t, _ in tags if t in ("script", "link", "img", "iframe")]
    sources = [a.get("src") or a.get("href") for _, a in tags if a.get("src") or a.get("href")]
    assert sources and not [s for s in sources if s.startswith(("http", "/", "//"))]
    assert "data-docs/demo_shop/index.html" in sources
    selected = [a["value"] for t, a in tags if t == "option" and "selected" in a]
    assert selected == ["2025-12-02"]
    assert f"{report['summary']['customers_scored']:,}" in html


def test_the_audiences_card_lists_the_days_counts_and_says_when_there_are_none(report):
    html = page.day_page(report, [DAYS[1].isoformat()], "w")
    assert 'id="audiences"' in html
    for row in report["audiences"]["on_day"]:
        assert f"<td>{row['audience']}</td>" in html
        assert f'<td class="num">{row["customers"]:,}</td>' in html
    none = copy.deepcopy(report)
    none["audiences"] = {**none["audiences"], "on_day": [], "history": {}}
    html = page.day_page(none, [DAYS[1].isoformat()], "w")
    assert "No audiences published for this day" in html


def test_the_day_picker_links_to_the_neighbouring_days(report):
    html = page.day_page(report, [d.isoformat() for d in reversed(DAYS)], "w")
    links = [a["href"] for t, a in elements(html) if t == "a"]
    assert "?ds=2025-12-01" in links and "?ds=2025-12-03" in links


def test_a_day_without_drift_check_says_why(report):
    without = copy.deepcopy(report)
    without["drift"]["on_day"] = None
    html = page.day_page(without, [DAYS[1].isoformat()], "w")
    assert "No drift check on this day" in html
    assert 'data-chart="drift-features"' not in html


def test_values_from_the_warehouse_are_escaped(report):
    hostile = copy.deepcopy(report)
    hostile["segments"]["segments"][0]["segment"] = "<img src=x onerror=alert(1)>"
    hostile["quality"]["entities"][0]["on_day"]["failed_rules"] = "<script>x()</script>"
    html = page.day_page(hostile, [DAYS[1].isoformat()], "w")
    assert "<img src=x" not in html and "<script>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_nothing_published_page_names_the_warehouse_and_what_to_run():
    html = page.nothing_published_page("DuckDB file /tmp/w.duckdb")
    assert 'id="nothing-published"' in html
    assert "/tmp/w.duckdb" in html and "cva_customer_value" in html


def test_data_docs_files_resolve_inside_the_source_site_only(tmp_path: Path):
    from fastapi import HTTPException

    from cva_tasks.ui.app import data_docs_file

    root = tmp_path / "data_docs"
    site = root / "demo_shop"
    (site / "validations").mkdir(parents=True)
    (site / "index.html").write_text("index")
    (site / "validations" / "run.html").write_text("run")
    (tmp_path / "secret.txt").write_text("secret")
    (root / "other").mkdir()
    (root / "other" / "index.html").write_text("other")
    os.symlink(tmp_path / "secret.txt", site / "link.html")

    assert data_docs_file(root, "demo_shop", "") == site / "index.html"
    assert data_docs_file(root, "demo_shop", "validations/run.html").read_text() == "run"
    for source, path in [
        ("demo_shop", "../../secret.txt"),
        ("demo_shop", "../other/index.html"),
        ("demo_shop", str(tmp_path / "secret.txt")),
        ("demo_shop", "link.html"),  # a symlink out of the site
        ("demo_shop", "missing.html"),
        ("..", "secret.txt"),
        ("demo shop", "index.html"),
        ("absent", "index.html"),
    ]:
        with pytest.raises(HTTPException) as refused:
            data_docs_file(root, source, path)
        assert refused.value.status_code == 404, (source, path)
