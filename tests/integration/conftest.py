"""Fixtures of the integration tests."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(autouse=True)
def pipeline_of_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daily DAG of these tests waits for the demo's sources only.

    Derived from the registry (sources tagged ``demo``): a source added by the README's
    steps, active on the demo's days, would otherwise hold every daily run at its sensor.
    A test that wants other sources sets ``CVA_PIPELINE_SOURCES`` itself.
    """
    from cva_tasks.sources.registry import all_sources

    demo = [s.name for s in all_sources() if "demo" in s.tags]
    monkeypatch.setenv("CVA_PIPELINE_SOURCES", ",".join(demo))


@pytest.fixture(scope="session")
def evaluate(shared_data: Path) -> Callable[[ModuleType], dict]:
    """Runs ``cva evaluate <name>`` with its default options in this process.

    Returns a function of the evaluation module (``cva_tasks.evaluation.<name>``) that
    returns its result, ``text`` included. Without ``../shared/data`` it skips (fails on
    CI), by the ``shared_data`` fixture's rule.
    """

    def run(evaluation: ModuleType) -> dict:
        parser = argparse.ArgumentParser()
        evaluation.add_arguments(parser)
        outcome = evaluation.command(parser.parse_args([]))
        print(outcome["text"])  # the report, for `pytest -s` and failed runs
        return outcome

    return run
