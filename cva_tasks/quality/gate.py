"""The gate's decision: whether a validation outcome lets the run go on."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date

from cva_tasks.quality.results import RuleFailure, ValidationOutcome

logger = logging.getLogger(__name__)


class DataQualityError(Exception):
    """A data-quality gate failed: a critical rule broke or too many rows were quarantined.

    Attributes:
        source: Source system name, e.g. ``"demo_shop"``.
        entity: Entity name, e.g. ``"transactions"``.
        ds: Logical date of the run.
        failures: The failed rules that caused the error.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        entity: str = "",
        ds: date | None = None,
        failures: Sequence[RuleFailure] = (),
    ) -> None:
        super().__init__(message)
        self.source = source
        self.entity = entity
        self.ds = ds
        self.failures = list(failures)


def enforce(
    outcome: ValidationOutcome,
    *,
    source: str,
    entity: str,
    ds: date,
    max_failing_share: float,
) -> None:
    """Fail the run when a critical rule failed or too many rows were quarantined.

    Args:
        outcome: What :func:`validate_frame` returned.
        source: Source system name, for the message.
        entity: Entity name, for the message.
        ds: Logical date of the run, for the message.
        max_failing_share: Largest allowed share (0..1) of quarantined rows.

    Raises:
        DataQualityError: If any critical rule failed, or if ``outcome.failing_share``
            exceeds ``max_failing_share``.
        ValueError: If ``max_failing_share`` is not within 0..1.
    """
    if not 0.0 <= max_failing_share <= 1.0:
        raise ValueError(f"max_failing_share must be within 0..1, not {max_failing_share}")
    prefix = f"{source}.{entity} ds={ds.isoformat()}"
    for failure in outcome.row_failures:
        logger.warning("%s: row rule %s", prefix, failure.describe())

    problems: list[str] = []
    causes: list[RuleFailure] = []
    for failure in outcome.critical_failures:
        problems.append(f"critical rule {failure.describe()}")
        causes.append(failure)
    share = outcome.failing_share
    if share > max_failing_share:
        rows = ", ".join(failure.describe() for failure in outcome.row_failures)
        problems.append(
            f"{len(outcome.quarantined)} of {outcome.total_rows} rows ({share:.1%}) broke "
            f"row-level rules, more than the allowed {max_failing_share:.1%}: {rows}"
        )
        causes.extend(outcome.row_failures)
    if problems:
        raise DataQualityError(
            f"{prefix}: " + "; ".join(problems),
            source=source,
            entity=entity,
            ds=ds,
            failures=causes,
        )
