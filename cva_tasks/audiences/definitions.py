"""Named audiences from a definitions file kept in configuration (``CVA_AUDIENCES``).

The file (default ``cva_tasks/config/audiences.yaml``, which documents the format)
lists audiences, each a set of conditions on the columns of the warehouse table
``customer_scores``. :func:`load_audiences` reads and checks it whole before anything
is evaluated: a bad definition is refused with the file, the audience and the rule it
breaks, so a day never publishes half of its audiences.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_AUDIENCES = Path(__file__).resolve().parent.parent / "config" / "audiences.yaml"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
#: Condition operators, by what they need of the column.
VALUE_OPS = ("in",)
NUMERIC_OPS = ("min", "max", "top_share", "bottom_share")
OPS = (*VALUE_OPS, *NUMERIC_OPS)
#: Recommendation lists an audience can attach (``customer_recommendations.list``).
RECOMMENDATION_LISTS = ("next_best", "buy_again")
NUMERIC_TYPES = ("DOUBLE PRECISION", "INTEGER", "BIGINT", "SMALLINT")
#: Columns of customer_scores that say nothing about a customer (who loaded the row).
NOT_CONDITIONS = ("as_of_date", "customer_id", "run_id", "loaded_at")
KEYS = ("name", "description", "where", "any_of", "recommendations")


class AudienceDefinitionError(ValueError):
    """An audience definition cannot be used; the message names file, audience and rule."""

    #: The same file fails the same way on a retry (see cva_tasks.steps.failures).
    retryable = False


@dataclass(frozen=True)
class Condition:
    """One column test: ``column`` ``op`` ``value`` (e.g. ``clv_365d top_share 0.25``)."""

    column: str
    op: str
    value: Any

    def describe(self) -> str:
        if self.op == "in":
            return f"{self.column} in {list(self.value)}"
        if self.op in ("min", "max"):
            return f"{self.column} {'>=' if self.op == 'min' else '<='} {self.value:g}"
        side = "top" if self.op == "top_share" else "bottom"
        return f"{self.column} in the {side} {self.value:.0%}"


@dataclass(frozen=True)
class Recommendations:
    """The recommendation list an audience attaches, and how many items of it."""

    list: str
    top: int


@dataclass(frozen=True)
class Audience:
    """One named audience.

    Attributes:
        name: lower-case identifier (a file name and a SQL value).
        description: what it is for.
        where: conditions that must all hold.
        any_of: groups of conditions; one group must hold (empty: no such test).
        recommendations: the list attached to each member, or None.
    """

    name: str
    description: str
    where: tuple[Condition, ...]
    any_of: tuple[tuple[Condition, ...], ...] = ()
    recommendations: Recommendations | None = None

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return (*self.where, *(c for group in self.any_of for c in group))


def condition_columns() -> dict[str, str]:
    """Columns an audience may test, with their SQL type (from the warehouse spec)."""
    from cva_tasks.warehouse.schema import TABLES

    return {
        c.name: c.type for c in TABLES["customer_scores"].columns if c.name not in NOT_CONDITIONS
    }


def load_audiences(path: str | Path | None = None) -> tuple[Audience, ...]:
    """Read and check the audience definitions at ``path`` (default: the packaged file).

    Raises:
        AudienceDefinitionError: the file cannot be read, or a definition breaks a rule;
            the message names the file, the audience (by name, else position) and the rule.
    """
    import yaml

    path = Path(path or DEFAULT_AUDIENCES)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise AudienceDefinitionError(
            f"{path}: cannot read the audience definitions: {exc}"
        ) from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("audiences"), list):
        raise AudienceDefinitionError(f"{path}: needs a list under 'audiences:'")
    if not raw["audiences"]:
        raise AudienceDefinitionError(f"{path}: no audience defined under 'audiences:'")
    columns = condition_columns()
    audiences: list[Audience] = []
    for number, item in enumerate(raw["audiences"], start=1):
        audience = _parse_audience(item, number, columns, f"{path}")
        if any(a.name == audience.name for a in audiences):
            raise AudienceDefinitionError(
                f"{path}: audience {audience.name!r}: the name is defined twice"
            )
        audiences.append(audience)
    return tuple(audiences)


def _parse_audience(item: Any, number: int, columns: dict[str, str], where: str) -> Audience:
    if not isinstance(item, dict):
        raise AudienceDefinitionError(f"{where}: audience #{number}: is not a mapping")
    name = item.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise AudienceDefinitionError(
            f"{where}: audience #{number}: name {name!r} must be lower-case letters, digits "
            "and _, starting with a letter (at most 63)"
        )
    at = f"{where}: audience {name!r}"
    unknown = sorted(set(item) - set(KEYS))
    if unknown:
        raise AudienceDefinitionError(f"{at}: unknown key(s) {unknown}; known: {list(KEYS)}")
    description = item.get("description")
    if not isinstance(description, str) or not description.strip():
        raise AudienceDefinitionError(f"{at}: needs a description")
    conditions = _parse_conditions(item.get("where") or {}, columns, f"{at}: where")
    groups_raw = item.get("any_of") or []
    if not isinstance(groups_raw, list):
        raise AudienceDefinitionError(f"{at}: any_of must be a list of condition groups")
    groups = tuple(
        _parse_conditions(group, columns, f"{at}: any_of #{i}")
        for i, group in enumerate(groups_raw, start=1)
    )
    if any(not group for group in groups):
        raise AudienceDefinitionError(f"{at}: an any_of group has no condition")
    recommendations = _parse_recommendations(item.get("recommendations"), at)
    if not conditions and not groups:
        raise AudienceDefinitionError(
            f"{at}: needs at least one condition (where or any_of); an audience of every "
            "customer is not a target"
        )
    return Audience(name, description.strip(), conditions, groups, recommendations)


def _parse_conditions(raw: Any, columns: dict[str, str], at: str) -> tuple[Condition, ...]:
    if not isinstance(raw, dict):
        raise AudienceDefinitionError(
            f"{at}: must map columns to conditions, e.g. churn_tier: {{in: [High]}}"
        )
    out = []
    for column, tests in raw.items():
        if column not in columns:
            raise AudienceDefinitionError(
                f"{at}: column {column!r} is not a customer_scores column; known: {sorted(columns)}"
            )
        if not isinstance(tests, dict) or not tests:
            raise AudienceDefinitionError(
                f"{at}: {column}: needs operators, e.g. {{min: 1}}; known: {list(OPS)}"
            )
        numeric = columns[column] in NUMERIC_TYPES
        for op, value in tests.items():
            out.append(_parse_condition(column, op, value, numeric, f"{at}: {column}"))
    return tuple(out)


def _parse_condition(column: str, op: Any, value: Any, numeric: bool, at: str) -> Condition:
    if op not in OPS:
        raise AudienceDefinitionError(f"{at}: unknown operator {op!r}; known: {list(OPS)}")
    if op == "in":
        if not isinstance(value, list) or not value:
            raise AudienceDefinitionError(f"{at}: in needs a non-empty list of values")
        if numeric and not all(_is_number(v) for v in value):
            raise AudienceDefinitionError(f"{at}: in: {value} are not all numbers (numeric column)")
        if not numeric:
            value = [str(v) for v in value]
        return Condition(column, op, tuple(value))
    if not numeric:
        raise AudienceDefinitionError(f"{at}: {op} needs a numeric column (it is text)")
    if not _is_number(value):
        raise AudienceDefinitionError(f"{at}: {op}: {value!r} is not a number")
    value = float(value)
    if op in ("top_share", "bottom_share") and not 0.0 < value <= 1.0:
        raise AudienceDefinitionError(f"{at}: {op}: {value:g} must be a share in (0, 1]")
    return Condition(column, op, value)


def _parse_recommendations(raw: Any, at: str) -> Recommendations | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"list", "top"}:
        raise AudienceDefinitionError(
            f"{at}: recommendations must be {{list: next_best|buy_again, top: N}}"
        )
    name = raw.get("list", "next_best")
    if name not in RECOMMENDATION_LISTS:
        raise AudienceDefinitionError(
            f"{at}: recommendations: list {name!r} is not one of {list(RECOMMENDATION_LISTS)}"
        )
    top = raw.get("top", 3)
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 10:
        raise AudienceDefinitionError(
            f"{at}: recommendations: top {top!r} must be a whole number from 1 to 10"
        )
    return Recommendations(name, top)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
