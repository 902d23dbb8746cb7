"""Data-quality gate: Great Expectations 1.x validation, quarantine and Data Docs.

Modules: :mod:`.rules` (suites and our meta conventions), :mod:`.context` (the process's GX
context), :mod:`.gx_runner` (:func:`validate_frame`), :mod:`.results` (reading GX's results),
:mod:`.quarantine` (the clean/quarantined split), :mod:`.gate` (:func:`enforce`),
:mod:`.data_docs` and :mod:`.summary`.
"""

from cva_tasks.quality.data_docs import build_data_docs
from cva_tasks.quality.gate import DataQualityError, enforce
from cva_tasks.quality.gx_runner import validate_frame
from cva_tasks.quality.quarantine import DQ_RULES_COLUMN
from cva_tasks.quality.results import RuleFailure, ValidationOutcome
from cva_tasks.quality.rules import load_suite

__all__ = [
    "DQ_RULES_COLUMN",
    "DataQualityError",
    "RuleFailure",
    "ValidationOutcome",
    "build_data_docs",
    "enforce",
    "load_suite",
    "validate_frame",
]
