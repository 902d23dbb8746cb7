"""Data-quality gate: Great Expectations 1.x validation, quarantine and Data Docs."""

from cva_tasks.quality.data_docs import build_data_docs
from cva_tasks.quality.gx_runner import (
    DQ_RULES_COLUMN,
    DataQualityError,
    RuleFailure,
    ValidationOutcome,
    enforce,
    load_suite,
    validate_frame,
)

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
