"""Fixtures of the integration tests."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


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
