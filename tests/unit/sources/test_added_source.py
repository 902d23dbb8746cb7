"""A source added by the README's steps, active on the demo's days, breaks nothing."""

from __future__ import annotations

import sys
import textwrap
from datetime import date

import pytest

from cva_tasks.settings import Settings
from cva_tasks.sources import registry

DEMO_DAY = date(2025, 12, 30)


@pytest.fixture
def added_source(tmp_path, monkeypatch):
    (tmp_path / "added_shop.py").write_text(
        textwrap.dedent(
            """
            from datetime import date
            from cva_tasks.sources.base import FileEntity, Source
            from cva_tasks.sources.readers import read_csv_text
            SOURCE = Source(name="added_shop", description="a shop export",
                            location_env="CVA_ADDED_SHOP_PATH", start_date=date(2025, 1, 1),
                            entities=(FileEntity("customers", "added_shop.customers",
                                                 "clients_{ds}.csv", read_csv_text,
                                                 ("id",), lambda f, i: f),))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("CVA_SOURCE_MODULES", "added_shop")
    monkeypatch.delenv("CVA_PIPELINE_SOURCES", raising=False)
    yield Settings.from_env()
    sys.modules.pop("added_shop", None)


def test_the_demo_feeds_its_daily_dag_from_its_own_sources_only(added_source):
    from cva_tasks.cli import demo_pipeline_sources

    feeding = {s.name for s in registry.pipeline_sources(DEMO_DAY, added_source)}
    assert "added_shop" in feeding, "the added source would hold the demo's sensors"
    narrowed = Settings.from_env(
        {
            **added_source.environ,
            "CVA_PIPELINE_SOURCES": ",".join(demo_pipeline_sources(added_source)),
        }
    )
    assert {s.name for s in registry.pipeline_sources(DEMO_DAY, narrowed)} == {
        "demo_feedback",
        "demo_shop",
    }


def test_a_chosen_pipeline_is_kept_by_the_demo(added_source):
    from cva_tasks.cli import demo_pipeline_sources

    chosen = Settings.from_env({**added_source.environ, "CVA_PIPELINE_SOURCES": "added_shop"})
    assert demo_pipeline_sources(chosen) == ("added_shop",)
