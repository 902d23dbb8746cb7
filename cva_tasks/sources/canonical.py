"""Helpers that source mappings share: typed columns, row-level conversion, reasons.

A mapping (``to_canonical``) names the canonical columns; :func:`convert` gives them
their canonical types row by row. Two columns carry why a row cannot go on, and both
send it to quarantine with ``mapping: <reason>`` in ``dq_rules``:

* :data:`REJECTED`: a quirk the source declares on purpose (a guest line, a free item):
  expected, so it does not count against the failing-share threshold;
* :data:`INVALID`: a value that does not parse or convert (a timestamp ``07/08/2018``,
  a quantity ``"abc"``, an identifier that is a JSON object): a defect of the data, so
  it counts against the threshold like a row broken by a suite's rule.

A reason reads ``<rule>`` or ``<rule>: <value and where it came from>``; the rule part
(:func:`rule_of`) never holds ``": "``, so reasons group by rule in ``dq_results``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cva_tasks.sources.base import SourceError
from cva_tasks.sources.timestamps import utc

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

REJECTED = "rejected_reason"
INVALID = "invalid_reason"
_MAX_VALUE_TEXT = 60


def value_text(value: Any) -> str:
    """A value as it appears in a reason: its repr, cut to a readable length."""
    text = repr(value.item() if hasattr(value, "item") and not isinstance(value, str) else value)
    return text if len(text) <= _MAX_VALUE_TEXT else text[: _MAX_VALUE_TEXT - 3] + "..."


def reason(rule: str, value: Any) -> str:
    """``<rule>: <value>``, e.g. ``quantity is not a whole number: 'abc'``."""
    return f"{rule}: {value_text(value)}"


def rule_of(text: str) -> str:
    """The rule part of a reason (the reason without its value)."""
    return text.split(": ", 1)[0]


def unparsed(raw: pd.Series, parsed: pd.Series, column: str, what: str) -> pd.Series:
    """Per row, ``<column> is not <what>: <value>`` where ``raw`` has a value and
    ``parsed`` has none; None elsewhere."""
    import pandas as pd

    bad = raw.notna() & parsed.isna()
    out = pd.Series(None, index=raw.index, dtype=object)
    if bad.any():
        out[bad] = [reason(f"{column} is not {what}", v) for v in raw[bad]]
    return out


def first_reason(*reasons: pd.Series) -> pd.Series:
    """Per row, the first of ``reasons`` that is set (None when none is)."""
    out = reasons[0].astype(object)
    for more in reasons[1:]:
        out = out.where(out.notna(), more.astype(object))
    return out.where(out.notna(), None)


def _is_text_like(value: Any) -> bool:
    import numpy as np

    return isinstance(value, str | int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _text(value: Any) -> Any:
    """Text for text-like values (a whole float loses its ``.0``); anything else as it is."""
    import numpy as np
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str) or not _is_text_like(value):
        return value
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value.item() if hasattr(value, "item") else value)


def id_text(values: pd.Series) -> pd.Series:
    """Identifiers as text: ``12346.0`` (a float read from a file) becomes ``'12346'``.

    A value that is not text-like (a JSON object or list) is left as it is, so that
    :func:`convert` rejects its row instead of landing the object's repr as an id.
    """
    import pandas as pd

    if pd.api.types.is_integer_dtype(values):
        return values.astype("string")
    if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
        return values.astype("Int64").astype("string")
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return values.astype("string").where(values.notna(), None)
    return values.astype(object).map(_text)


# --- row-level conversion to the canonical types -------------------------------------


def _numbers(values: pd.Series) -> pd.Series:
    """Numbers as floats; whatever is not a number (text, a JSON object) becomes NaN."""
    import pandas as pd

    return pd.to_numeric(values, errors="coerce").astype("float64")


def _as_int(values: pd.Series) -> tuple[pd.Series, pd.Series, str]:
    import numpy as np

    numbers = _numbers(values)
    whole = numbers.notna() & np.isfinite(numbers) & (numbers % 1 == 0)
    whole &= numbers.abs() < 2.0**63
    return numbers.where(whole).astype("Int64"), values.notna() & ~whole, "is not a whole number"


def _as_float(values: pd.Series) -> tuple[pd.Series, pd.Series, str]:
    numbers = _numbers(values)
    return numbers, values.notna() & numbers.isna(), "is not a number"


def _as_timestamp(values: pd.Series) -> tuple[pd.Series, pd.Series, str]:
    import pandas as pd

    if isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = values.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    elif pd.api.types.is_datetime64_dtype(values):
        parsed = values.dt.tz_localize("UTC").astype("datetime64[us, UTC]")
    else:
        # Only text and datetimes are timestamps: a number (an epoch?) or an object is not.
        parsed = utc(values.map(lambda v: v if isinstance(v, str | datetime) else None))
    return parsed, values.notna() & parsed.isna(), "is not a timestamp"


def _as_text(values: pd.Series) -> tuple[pd.Series, pd.Series, str]:
    import pandas as pd

    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return values, pd.Series(False, index=values.index), "is not text"
    text = values.astype(object).map(_text)
    bad = text.map(lambda v: v is not None and not isinstance(v, str)).astype(bool)
    return text.where(~bad, None), bad, "is not text"


def _as_bool(values: pd.Series) -> tuple[pd.Series, pd.Series, str]:
    import numpy as np

    flags = values.map(lambda v: v if isinstance(v, bool | np.bool_) else None)
    return flags.astype("boolean"), values.notna() & flags.isna(), "is not true or false"


def _coercer(kind: pa.DataType) -> Callable[[pd.Series], tuple[pd.Series, pd.Series, str]]:
    import pyarrow as pa

    if pa.types.is_integer(kind):
        return _as_int
    if pa.types.is_floating(kind):
        return _as_float
    if pa.types.is_timestamp(kind):
        return _as_timestamp
    if pa.types.is_boolean(kind):
        return _as_bool
    return _as_text


def convert(frame: pd.DataFrame, entity: str, where: str) -> tuple[pa.Table, pd.Series]:
    """Give the mapped ``frame`` the canonical types of ``entity``, row by row.

    A value that does not take its column's type becomes null in the table and its row
    gets a reason (``quantity is not a whole number: 'abc'``; the first one per row).

    Returns:
        The canonical table (one row per row of ``frame``, same order) and, per row,
        the reason it is invalid or None.

    Raises:
        SourceError: naming ``where`` when the mapping produced no such column (a
            defect of the mapping, not of a row).
    """
    import pandas as pd
    import pyarrow as pa

    from cva_tasks.entities import PII_COLUMNS, SCHEMAS

    schema = SCHEMAS[entity]
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        raise SourceError(f"{where}: mapping produced no column(s) {missing}")
    invalid = pd.Series(None, index=frame.index, dtype=object)
    columns = []
    for column in schema:
        values = frame[column.name]
        coerce = _coercer(column.type)
        if coerce is not _as_timestamp or isinstance(values.dtype, pd.DatetimeTZDtype):
            try:
                columns.append(_arrow(values, column.type))
                continue
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
                pass
        typed, bad, rule = coerce(values)
        if bad.any():
            found = pd.Series(None, index=frame.index, dtype=object)
            rule = f"{column.name} {rule}"
            # A value of a PII column stays out of the reason (it ends in errors and logs).
            shown = column.name not in PII_COLUMNS[entity]
            found[bad] = [reason(rule, v) if shown else rule for v in values[bad]]
            invalid = first_reason(invalid, found)
        try:
            columns.append(_arrow(typed, column.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise SourceError(
                f"{where}: column {column.name!r} does not convert to {column.type}: {exc}"
            ) from exc
    return pa.Table.from_arrays(columns, schema=schema), invalid


def _arrow(values: pd.Series, kind: pa.DataType) -> pa.Array:
    import pandas as pd
    import pyarrow as pa

    if pa.types.is_timestamp(kind) and isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC")
    return pa.array(values, type=kind, from_pandas=True)


def to_table(frame: pd.DataFrame, entity: str, where: str) -> pa.Table:
    """Check ``frame`` against the canonical schema of ``entity`` and convert it.

    For frames that must convert whole (rows already checked, the demo's bulk landing).

    Raises:
        SourceError: naming ``where`` (source and entity), the column and a value that
            is missing or cannot take the canonical type.
    """
    table, invalid = convert(frame, entity, where)
    bad = invalid.notna()
    if bad.any():
        raise SourceError(
            f"{where}: {int(bad.sum())} row(s) do not convert, e.g. row "
            f"{invalid[bad].index[0]}: {invalid[bad].iloc[0]}"
        )
    return table


def from_table(table: pa.Table) -> pd.DataFrame:
    """Canonical table to a pandas frame with nullable dtypes kept nullable."""
    import pandas as pd
    import pyarrow as pa

    nullable = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    return table.to_pandas(types_mapper=nullable.get)
