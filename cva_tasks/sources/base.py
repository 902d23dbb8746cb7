"""What a source is: a name, where its data lives, and one mapping per entity.

A source module declares a module-level ``SOURCE = Source(...)``; the registry
finds it. Declarations stay light (no pandas at import) because Airflow parses
the DAG files generated from them every few seconds.

Two kinds of entity extraction ship with the project:

* :class:`SqlEntity` runs a query over the data interval ``[start, end)`` by a
  watermark column, through an Airflow connection id;
* :class:`FileEntity` reads the rows of the interval from files (a daily drop
  named after the day, or a folder of exports filtered by a timestamp column).

Each maps source columns onto a canonical entity (:mod:`cva_tasks.entities`)
with a pure ``to_canonical(frame, interval)`` function and names the expectation
suite that guards the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from cva_tasks.settings import Settings


class SourceError(Exception):
    """Input that a source cannot turn into its canonical entity.

    Malformed input stays malformed on a retry, so it fails the task at once;
    the subclasses below are the cases where waiting and retrying can help.
    """

    retryable = False


class SourceUnavailable(SourceError):
    """The source system did not answer (database down, network)."""

    retryable = True


class DropNotArrived(SourceError):
    """The day's file has not been dropped (yet)."""

    retryable = True


#: SQLSTATE classes a retry can help with: connection exception, transaction rollback
#: (serialization failure, deadlock), insufficient resources, operator intervention
#: (statement timeout, server shutting down), system error.
_RETRYABLE_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
#: Single SQLSTATEs a retry can help with: lock not available (lock timeout), object in use.
_RETRYABLE_SQLSTATES = frozenset({"55P03", "55006"})
#: SQLite result codes a retry can help with (``sqlite3`` errors carry the name).
_RETRYABLE_SQLITE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR")


def sql_error_is_retryable(exc: BaseException) -> bool:
    """Whether a failed query may succeed on a later try.

    Decided on the database's own code where the driver gives one (PostgreSQL's
    SQLSTATE, SQLite's result code): a server that is down, a timeout, a lock not
    granted, a deadlock are retryable; a syntax error, a missing table or column, bad
    data, a constraint are not. Without a code (e.g. a refused connection, where
    libpq reports before any SQLSTATE exists) SQLAlchemy's class decides: an
    ``OperationalError`` or a lost connection is retryable, anything else is not.
    ``pandas.read_sql`` wraps the driver's error; the chain is followed to it.
    """
    import sqlalchemy as sa

    seen: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in seen:
        seen.append(cause)
        cause = cause.__cause__ or getattr(cause, "orig", None)
    for error in seen:
        sqlstate = getattr(error, "pgcode", None) or getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str) and len(sqlstate) == 5:
            return sqlstate[:2] in _RETRYABLE_SQLSTATE_CLASSES or sqlstate in _RETRYABLE_SQLSTATES
        sqlite_code = getattr(error, "sqlite_errorname", None)
        if isinstance(sqlite_code, str):
            return sqlite_code.startswith(_RETRYABLE_SQLITE)
    for error in seen:
        if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(
            error,
            sa.exc.OperationalError
            | sa.exc.InterfaceError
            | sa.exc.DisconnectionError
            | sa.exc.TimeoutError
            | ConnectionError
            | TimeoutError,
        ):
            return True
    return False


def sql_failure(exc: BaseException, where: str) -> SourceError:
    """The :class:`SourceError` to raise for a failed query: retryable or not.

    Args:
        exc: what the driver, SQLAlchemy or pandas raised.
        where: ``<source>.<entity> on <conn_id>``, put first in the message.
    """
    import sqlalchemy as sa

    root: BaseException = exc
    while isinstance(root.__cause__, sa.exc.SQLAlchemyError):
        root = root.__cause__
    # SQLAlchemy's message holds the SQL and its parameters (the interval bounds).
    detail = " ".join(str(root).split())
    if sql_error_is_retryable(exc):
        return SourceUnavailable(f"{where}: the database did not answer, retry later: {detail}")
    return SourceError(f"{where}: the query failed and a retry will not help: {detail}")


@dataclass(frozen=True)
class Interval:
    """A data interval ``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("interval bounds must be timezone-aware")
        if not self.start < self.end:
            raise ValueError(f"empty interval [{self.start}, {self.end})")

    @classmethod
    def for_day(cls, ds: date) -> Interval:
        start = datetime(ds.year, ds.month, ds.day, tzinfo=UTC)
        return cls(start, start + timedelta(days=1))

    @property
    def ds(self) -> date:
        return self.start.astimezone(UTC).date()

    def sql_params(self) -> dict[str, str]:
        """Bounds as ``YYYY-MM-DD HH:MM:SS`` UTC text.

        Text compares correctly with SQLite's text timestamps and PostgreSQL
        casts it to ``timestamp`` when compared with a timestamp column.
        """
        fmt = "%Y-%m-%d %H:%M:%S"
        return {
            "start": self.start.astimezone(UTC).strftime(fmt),
            "end": self.end.astimezone(UTC).strftime(fmt),
        }


Mapper = Callable[["pd.DataFrame", Interval], "pd.DataFrame"]


@dataclass(frozen=True)
class SqlEntity:
    """An entity extracted by SQL over the interval.

    Attributes:
        entity: canonical entity name (``transactions``, ``customers``, ...).
        suite: expectation suite name (``expectations/<suite>.json``).
        query: SQL with ``:start`` and ``:end`` bind parameters on the watermark.
        to_canonical: maps the query's frame onto the canonical entity.
        watermark: the column the query filters on; the suite checks it lies
            inside the interval.
    """

    entity: str
    suite: str
    query: str
    to_canonical: Mapper
    watermark: str = "updated_at"

    def extract(self, source: Source, interval: Interval, settings: Settings) -> pd.DataFrame:
        import pandas as pd
        import sqlalchemy as sa

        from cva_tasks.connections import sqlalchemy_url

        if not source.conn_id:
            raise SourceError(f"{source.name}: a SQL entity needs conn_id")
        where = f"{source.name}.{self.entity} on {source.conn_id}"
        try:
            # An undefined connection or one of a type we cannot read stays so on a retry.
            engine = sa.create_engine(sqlalchemy_url(source.conn_id))
        except (LookupError, ValueError, sa.exc.ArgumentError) as exc:
            raise SourceError(f"{where}: {exc}") from exc
        try:
            with engine.connect() as conn:
                frame = pd.read_sql(sa.text(self.query), conn, params=interval.sql_params())
        except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
            raise sql_failure(exc, where) from exc
        finally:
            engine.dispose()
        return self.to_canonical(frame, interval)


Reader = Callable[[str], "pd.DataFrame"]


@dataclass(frozen=True)
class FileEntity:
    """An entity read from files.

    Attributes:
        entity: canonical entity name.
        suite: expectation suite name.
        pattern: file name relative to the source location; ``{ds}`` is
            replaced by the day (a daily drop) or a glob (``*.csv.gz``) picks
            every export, filtered to the interval by ``to_canonical``.
        reader: reads one file into a frame; raises :class:`SourceError`
            naming the file and line on malformed input.
        required_columns: source columns that must be present in every file.
        to_canonical: maps the rows read onto the canonical entity.
        missing_ok: a missing daily file means an empty day instead of an error.
    """

    entity: str
    suite: str
    pattern: str
    reader: Reader
    required_columns: tuple[str, ...]
    to_canonical: Mapper
    missing_ok: bool = False

    def files(self, source: Source, interval: Interval, settings: Settings) -> list[str]:
        from cva_tasks import storage
        from cva_tasks.lake import join

        location = source.location(settings)
        pattern = self.pattern.format(ds=interval.ds.isoformat())
        fs, base = storage.filesystem(location)
        if fs.isfile(base):
            return [location]
        if any(ch in pattern for ch in "*?["):
            matches = sorted(fs.glob(f"{base.rstrip('/')}/{pattern}"))
            return [fs.unstrip_protocol(m) if "://" in location else m for m in matches]
        return [join(location, pattern)]

    def extract(self, source: Source, interval: Interval, settings: Settings) -> pd.DataFrame:
        import pandas as pd

        from cva_tasks import storage

        frames = []
        paths = self.files(source, interval, settings)
        for path in paths:
            if not storage.exists(path):
                if self.missing_ok:
                    continue
                raise DropNotArrived(
                    f"{source.name}.{self.entity}: no drop for ds={interval.ds}: "
                    f"{path} does not exist"
                )
            frame = self.reader(path)
            missing = [c for c in self.required_columns if c not in frame.columns]
            if missing and not (frame.empty and len(frame.columns) == 0):
                raise SourceError(
                    f"{source.name}.{self.entity}: {path} lacks required column(s) "
                    f"{missing}; it has {list(frame.columns)}"
                )
            frames.append(frame.reindex(columns=list(self.required_columns)))
        if not paths:
            raise SourceError(
                f"{source.name}.{self.entity}: no file matches {self.pattern} "
                f"under {source.location(settings)}"
            )
        frame = (
            pd.concat(frames, ignore_index=True)
            if frames
            else pd.DataFrame(columns=list(self.required_columns))
        )
        return self.to_canonical(frame, interval)


@dataclass(frozen=True)
class Source:
    """A registered source.

    Attributes:
        name: short identifier, used in DAG ids and lake paths.
        description: one line for the DAG's doc.
        entities: what it extracts and how it maps.
        start_date: first day its DAG is scheduled for.
        conn_id: Airflow connection id for SQL sources.
        location_env: environment variable that overrides ``default_location``.
        default_location: file location (relative to ``CVA_HOME`` when relative).
        end_date: last day with data, for historical exports.
        tags: extra DAG tags.
    """

    name: str
    description: str
    entities: tuple[SqlEntity | FileEntity, ...]
    start_date: date
    conn_id: str | None = None
    location_env: str | None = None
    default_location: str | None = None
    end_date: date | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)

    def entity(self, name: str) -> SqlEntity | FileEntity:
        for spec in self.entities:
            if spec.entity == name:
                return spec
        raise KeyError(f"source {self.name!r} has no entity {name!r}")

    def location(self, settings: Settings) -> str:
        """Where the files are: ``location_env`` when set, else ``default_location``."""
        value = (self.location_env and settings.variable(self.location_env)) or (
            self.default_location
        )
        if not value:
            raise SourceError(f"{self.name}: no location; set {self.location_env}")
        return settings.resolve_location(value)
