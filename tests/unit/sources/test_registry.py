from __future__ import annotations

import sys
import textwrap

import pytest

from cva_tasks.settings import Settings
from cva_tasks.sources import registry


def test_builtin_sources_are_registered():
    names = [s.name for s in registry.all_sources()]
    # A source added by the README's steps joins these; the shipped ones stay.
    assert names == sorted(names)
    assert {"demo_feedback", "demo_shop", "online_retail"} <= set(names)
    for source in registry.all_sources():
        for spec in source.entities:
            assert spec.entity in {"transactions", "customers", "items", "feedback"}


def test_every_suite_exists():
    from cva_tasks.settings import Settings

    expectations = Settings.from_env().expectations_dir
    for source in registry.all_sources():
        for spec in source.entities:
            assert (expectations / f"{spec.suite}.json").exists(), spec.suite


def test_a_module_outside_the_package_registers_by_setting(tmp_path, monkeypatch):
    (tmp_path / "my_crm.py").write_text(
        textwrap.dedent(
            """
            from datetime import date
            from cva_tasks.sources.base import Source, SqlEntity
            SOURCE = Source(name="my_crm", description="CRM", conn_id="my_crm",
                            start_date=date(2025, 1, 1),
                            entities=(SqlEntity("customers", "my_crm.customers",
                                                "select 1", lambda f, i: f),))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("CVA_SOURCE_MODULES", "my_crm")
    modules = Settings.from_env().source_modules
    assert registry.get_source("my_crm", modules).conn_id == "my_crm"
    sys.modules.pop("my_crm", None)


def test_module_without_source_is_refused(tmp_path, monkeypatch):
    (tmp_path / "not_a_source.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("CVA_SOURCE_MODULES", "not_a_source")
    with pytest.raises(ValueError, match="defines no SOURCE"):
        registry.all_sources(Settings.from_env().source_modules)
    sys.modules.pop("not_a_source", None)
