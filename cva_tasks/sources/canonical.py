"""Helpers that source mappings share: typed columns and the canonical check."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cva_tasks.sources.base import SourceError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def utc(values: pd.Series) -> pd.Series:
    """Parse timestamps (text, naive or aware) as UTC ``datetime64[us, UTC]``."""
    import pandas as pd

    # Unparseable values become NaT; the suites' not-null rules quarantine them.
    return pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce").astype(
        "datetime64[us, UTC]"
    )


def id_text(values: pd.Series) -> pd.Series:
    """Identifiers as text: ``12346.0`` (a float read from a file) becomes ``'12346'``."""
    import pandas as pd

    if pd.api.types.is_float_dtype(values):
        values = values.astype("Int64")
    out = values.astype("string")
    return out.where(values.notna(), None)


REJECTED = "rejected_reason"


def to_table(frame: pd.DataFrame, entity: str, where: str) -> pa.Table:
    """Check ``frame`` against the canonical schema of ``entity`` and convert it.

    Raises:
        SourceError: naming ``where`` (source and entity) and the column that
            is missing or cannot take the canonical type.
    """
    import pyarrow as pa

    from cva_tasks.entities import SCHEMAS

    schema = SCHEMAS[entity]
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        raise SourceError(f"{where}: mapping produced no column(s) {missing}")
    columns = []
    for column in schema:
        try:
            columns.append(pa.array(frame[column.name], type=column.type, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            sample = frame[column.name].head(3).tolist()
            raise SourceError(
                f"{where}: column {column.name!r} does not convert to {column.type} "
                f"(e.g. {sample}): {exc}"
            ) from exc
    return pa.Table.from_arrays(columns, schema=schema)


def from_table(table: pa.Table) -> pd.DataFrame:
    """Canonical table to a pandas frame with nullable dtypes kept nullable."""
    import pandas as pd
    import pyarrow as pa

    nullable = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    return table.to_pandas(types_mapper=nullable.get)
