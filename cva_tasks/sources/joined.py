"""An entity built from several files joined on keys, declared instead of coded.

A shop export often splits one entity over files: order lines, their orders, the
customers who placed them. :class:`JoinedFileEntity` reads each :class:`FilePart` the
way a :class:`~cva_tasks.sources.base.FileEntity` reads its file (a daily drop named
after ``{ds}`` or a glob over a folder of exports; the same required columns, the same
missing-drop and malformed-file errors, naming the file), then left-joins every other
part onto the first one (the grain of the entity) by its :class:`JoinOn` keys, and
hands the joined rows to ``to_canonical``.

Rules, each naming the file:

* a part's file that is missing fails the extract (retried, like any missing drop);
* a part without a join key column fails it (malformed, not retried);
* a key repeated inside one file of a joined part fails it (the join would multiply
  rows); the same key in two drops (a day's and, read for its lookback, the day
  before's) is resolved to the later drop;
* a row of the first part whose key is not in the joined part is kept and marked
  invalid (``<key> <value> not found in <files>``): it goes to quarantine with that
  reason and counts against the failing share.

A joined part's column that the rows already have (``updated_at`` in orders and in
customers) is renamed ``<part>.<column>``; the key columns are not repeated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cva_tasks.sources.base import (
    DROP_DAY,
    ORIGIN,
    FileEntity,
    Interval,
    Mapper,
    Reader,
    Source,
    SourceError,
)
from cva_tasks.sources.canonical import INVALID, first_reason, reason

if TYPE_CHECKING:
    import pandas as pd

    from cva_tasks.settings import Settings


@dataclass(frozen=True)
class FilePart:
    """One file (or set of files) of a joined entity.

    Attributes:
        name: what the part is (``orders``); names its renamed columns and its errors.
        pattern: file name under the source's location, ``{ds}`` for a daily drop or a
            glob over a folder of exports (as :class:`~cva_tasks.sources.base.FileEntity`).
        reader: reads one file (e.g. :func:`~cva_tasks.sources.readers.read_csv_text`).
        required_columns: columns every file of the part must have (keys included).
    """

    name: str
    pattern: str
    reader: Reader
    required_columns: tuple[str, ...]


@dataclass(frozen=True)
class JoinOn:
    """Join ``part`` onto the rows so far where ``left`` (a column they have) equals
    ``right`` (a column of the part; default the same name)."""

    part: str
    left: str
    right: str | None = None

    @property
    def right_key(self) -> str:
        return self.right or self.left


def _as_read(frame: pd.DataFrame, interval: Interval) -> pd.DataFrame:
    return frame


@dataclass(frozen=True)
class JoinedFileEntity:
    """An entity whose rows are the first part's, joined with the others.

    Attributes:
        entity: canonical entity name.
        suite: expectation suite name.
        parts: the files; the first gives the rows (the entity's grain).
        joins: in order, which part joins on which key.
        to_canonical: maps the joined rows onto the canonical entity.
        missing_ok: a missing daily file of the first part means an empty day.
    """

    entity: str
    suite: str
    parts: tuple[FilePart, ...]
    joins: tuple[JoinOn, ...]
    to_canonical: Mapper
    missing_ok: bool = False

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError(f"{self.entity}: a joined entity needs at least one part")
        names = [p.name for p in self.parts]
        for join in self.joins:
            if join.part not in names[1:]:
                raise ValueError(
                    f"{self.entity}: join on unknown part {join.part!r}; "
                    f"parts after the first: {names[1:]}"
                )
            required = self.part(join.part).required_columns
            if join.right_key not in required:
                raise ValueError(
                    f"{self.entity}: key {join.right_key!r} is not a required column of "
                    f"{join.part} {list(required)}"
                )

    def part(self, name: str) -> FilePart:
        return next(p for p in self.parts if p.name == name)

    @property
    def rereads(self) -> bool:
        """Whether a later run reads an earlier day's rows again: as for its first part."""
        return self._reading(self.parts[0]).rereads

    def _reading(self, part: FilePart, missing_ok: bool = False) -> FileEntity:
        return FileEntity(
            entity=self.entity,
            suite=self.suite,
            pattern=part.pattern,
            reader=part.reader,
            required_columns=part.required_columns,
            to_canonical=_as_read,
            missing_ok=missing_ok,
        )

    def extract(self, source: Source, interval: Interval, settings: Settings) -> pd.DataFrame:
        first = self.parts[0]
        rows = self._read_part(first, source, interval, settings, self.missing_ok)
        for join in self.joins:
            part = self.part(join.part)
            other = self._read_part(part, source, interval, settings, False)
            rows = self._join(rows, other, join, part, source, interval, settings)
        return self.to_canonical(rows, interval)

    def _read_part(
        self,
        part: FilePart,
        source: Source,
        interval: Interval,
        settings: Settings,
        missing_ok: bool,
    ) -> pd.DataFrame:
        try:
            return self._reading(part, missing_ok).extract(source, interval, settings)
        except SourceError as exc:
            raise type(exc)(f"{part.name} part: {exc}") from exc

    def _join(
        self,
        rows: pd.DataFrame,
        other: pd.DataFrame,
        join: JoinOn,
        part: FilePart,
        source: Source,
        interval: Interval,
        settings: Settings,
    ) -> pd.DataFrame:
        import pandas as pd

        files = ", ".join(
            path.rstrip("/").rsplit("/", 1)[-1]
            for path in self._reading(part).files(source, interval, settings)
        )
        where = f"{source.name}.{self.entity}: {part.name} part ({files})"
        if join.left not in rows.columns:
            raise SourceError(f"{where}: the rows have no column {join.left!r} to join on")
        key = join.right_key
        other = other.sort_values(DROP_DAY, kind="stable") if len(other) else other
        repeated = other.duplicated(subset=[DROP_DAY, key], keep=False) & other[key].notna()
        if repeated.any():
            origins = other.loc[repeated, ORIGIN].head(4).tolist()
            raise SourceError(
                f"{where}: key {key} repeats within one file, e.g. "
                f"{other.loc[repeated, key].head(4).tolist()} at {origins}; "
                "joining would multiply rows"
            )
        latest = other.drop_duplicates(subset=[key], keep="last").drop(columns=[ORIGIN, DROP_DAY])
        renamed = {
            column: f"{part.name}.{column}"
            for column in latest.columns
            if column != key and column in rows.columns
        }
        latest = latest.rename(columns=renamed)
        matched = rows[join.left].isin(set(latest[key].dropna()))
        joined = rows.merge(
            latest.rename(columns={key: "_join_key"}),
            how="left",
            left_on=join.left,
            right_on="_join_key",
            sort=False,
        ).drop(columns=["_join_key"])
        joined.index = rows.index
        missing = rows[join.left].notna() & ~matched
        not_found = pd.Series(None, index=rows.index, dtype=object)
        if missing.any():
            not_found[missing] = [
                reason(f"{join.left} not found in {part.name} ({files})", value)
                for value in rows.loc[missing, join.left]
            ]
        none = pd.Series(None, index=rows.index, dtype=object)
        joined[INVALID] = first_reason(rows.get(INVALID, none), not_found)
        return joined
