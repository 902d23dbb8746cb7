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

**Late rows.** A run reads ``[start - lookback, end)``, its *window*, not only its
interval: a row committed after an earlier day's extract ran, with a watermark on
that day, is found by a later run (:mod:`cva_tasks.sources.window` decides which rows
of the window are the run's to land).

**Time zones.** Watermarks are compared as UTC instants, never as text: a SQL query
pre-filters a wider span (:meth:`Interval.sql_params`) and the exact window is applied
after conversion to UTC, so ``2025-06-10T23:30:00-02:00`` is a row of 06-11.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

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


#: The largest offsets from UTC in use (UTC-12 .. UTC+14): how far a local text
#: timestamp can sit from its UTC instant.
_MAX_UTC_OFFSET = timedelta(hours=14)
_TEXT_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class Interval:
    """A data interval ``[start, end)`` in UTC, read with a lookback.

    Attributes:
        start: first instant of the run's interval (its ``ds`` is this day).
        end: end of the interval (exclusive).
        lookback: how far before ``start`` the run reads, for rows that arrived late.
    """

    start: datetime
    end: datetime
    lookback: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("interval bounds must be timezone-aware")
        if not self.start < self.end:
            raise ValueError(f"empty interval [{self.start}, {self.end})")
        if self.lookback < timedelta(0):
            raise ValueError(f"negative lookback {self.lookback}")

    @classmethod
    def for_day(cls, ds: date, lookback: timedelta = timedelta(0)) -> Interval:
        start = datetime(ds.year, ds.month, ds.day, tzinfo=UTC)
        return cls(start, start + timedelta(days=1), lookback)

    @property
    def ds(self) -> date:
        return self.start.astimezone(UTC).date()

    @property
    def window_start(self) -> datetime:
        """The first instant the run reads: ``start - lookback``."""
        return self.start - self.lookback

    def in_window(self, stamps: pd.Series) -> pd.Series:
        """Whether each UTC timestamp lies in ``[window_start, end)`` (NaT: False)."""
        return ((stamps >= self.window_start) & (stamps < self.end)).fillna(False).astype(bool)

    def sql_params(self) -> dict[str, str]:
        """Bounds of a SQL query's pre-filter on its watermark, as ``YYYY-MM-DD`` text.

        The window widened by the largest UTC offsets and to whole days: a text
        timestamp compares as text (``...T23:30:00-02:00`` sorts by its local time, and
        ``T`` after a space), so the query fetches a little more and the exact window
        is applied once the watermark is in UTC. PostgreSQL casts the text to its
        timestamp type, SQLite compares text with text.
        """
        low = (self.window_start.astimezone(UTC) - _MAX_UTC_OFFSET).date()
        high = (self.end.astimezone(UTC) + _MAX_UTC_OFFSET).date() + timedelta(days=1)
        return {"start": low.isoformat(), "end": high.isoformat()}

    def text_bounds(self) -> tuple[str, str]:
        """The interval (without lookback) as ``YYYY-MM-DD HH:MM:SS`` text: where a
        watermark that does not parse is placed, by its text, on exactly one day."""
        return (
            self.start.astimezone(UTC).strftime(_TEXT_FORMAT),
            self.end.astimezone(UTC).strftime(_TEXT_FORMAT),
        )


Mapper = Callable[["pd.DataFrame", Interval], "pd.DataFrame"]


@dataclass(frozen=True)
class SqlEntity:
    """An entity extracted by SQL over the interval.

    Attributes:
        entity: canonical entity name (``transactions``, ``customers``, ...).
        suite: expectation suite name (``expectations/<suite>.json``).
        query: SQL with ``:start`` and ``:end`` bind parameters on the watermark: a
            pre-filter in whole days around the window (:meth:`Interval.sql_params`).
        to_canonical: maps the query's frame onto the canonical entity.
        watermark: the column the query filters on; only rows whose watermark lies in
            the window, in UTC, are kept. A query that does not return it under this
            name is windowed on the mapped entity's version column instead
            (``updated_at``; ``submitted_at`` for feedback).
    """

    entity: str
    suite: str
    query: str
    to_canonical: Mapper
    watermark: str = "updated_at"

    #: A later run reads this source over its lookback again, so a day not landed yet
    #: gets the rows of its own interval when it runs.
    rereads = True

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
        if self.watermark in frame.columns:
            return self.to_canonical(in_window(frame, self.watermark, interval), interval)
        from cva_tasks.entities import VERSION_COLUMNS

        mapped = self.to_canonical(frame, interval)
        return in_window(mapped, VERSION_COLUMNS[self.entity], interval)


def in_window(frame: pd.DataFrame, column: str, interval: Interval) -> pd.DataFrame:
    """The rows whose watermark ``column``, in UTC, lies in the interval's window.

    A watermark that does not parse as a timestamp is kept on the one day its text falls
    in (the row is then quarantined with the reason), so it is quarantined once instead
    of never or on every day of the pre-filter.
    """
    from cva_tasks.sources.timestamps import utc

    raw = frame[column]
    stamps = utc(raw)
    low, high = interval.text_bounds()
    text = raw.astype("string")
    placed = stamps.isna() & raw.notna() & (text >= low) & (text < high)
    keep = interval.in_window(stamps) | placed.fillna(False).astype(bool)
    return frame.loc[keep].reset_index(drop=True)


Reader = Callable[[str], "pd.DataFrame"]

#: Hidden columns a file read adds: where a row came from (``<file> line <n>``, for the
#: reasons of its quarantine) and the day of the drop it was read from.
ORIGIN = "_origin"
DROP_DAY = "_drop_day"


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
            naming the file and line on malformed input. An index named ``line``
            holds each row's line in the file.
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

    @property
    def rereads(self) -> bool:
        """Whether a later run reads the rows of an earlier day again: a folder of
        exports is read whole by every run, a daily drop only by its day's run (and, for
        its rows past midnight UTC, by the next day's)."""
        return "{ds}" not in self.pattern

    def files(
        self, source: Source, interval: Interval, settings: Settings, day: date | None = None
    ) -> list[str]:
        """The files to read: the drop of ``day`` (default the interval's) or every export."""
        from cva_tasks import storage
        from cva_tasks.lake import join

        location = source.location(settings)
        pattern = self.pattern.format(ds=(day or interval.ds).isoformat())
        fs, base = storage.filesystem(location)
        if fs.isfile(base):
            return [location]
        if any(ch in pattern for ch in "*?["):
            matches = sorted(fs.glob(f"{base.rstrip('/')}/{pattern}"))
            return [fs.unstrip_protocol(m) if "://" in location else m for m in matches]
        return [join(location, pattern)]

    def extract(self, source: Source, interval: Interval, settings: Settings) -> pd.DataFrame:
        """The mapped rows of the files, each with where it came from (:data:`ORIGIN`).

        A daily drop read with a lookback also reads the previous day's drop, for its rows
        that lie past midnight UTC (a drop named after the shop's local day); those rows
        carry :data:`DROP_DAY`, the day of their drop.
        """
        import pandas as pd

        from cva_tasks import storage

        paths = self.files(source, interval, settings)
        if not paths:
            raise SourceError(
                f"{source.name}.{self.entity}: no file matches {self.pattern} "
                f"under {source.location(settings)}"
            )
        frames = []
        for path in paths:
            if not storage.exists(path):
                if self.missing_ok:
                    continue
                raise DropNotArrived(
                    f"{source.name}.{self.entity}: no drop for ds={interval.ds}: "
                    f"{path} does not exist"
                )
            frames.append(self._read(source, path, interval.ds))
        if not self.rereads and interval.lookback > timedelta(0):
            previous = interval.ds - timedelta(days=1)
            for path in self.files(source, interval, settings, previous):
                if storage.exists(path):
                    frames.append(self._read(source, path, previous))
        columns = [*self.required_columns, ORIGIN, DROP_DAY]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
        return self.to_canonical(frame, interval)

    def _read(self, source: Source, path: str, day: date) -> pd.DataFrame:
        frame = _cached_read(self.reader, path)
        missing = [c for c in self.required_columns if c not in frame.columns]
        if missing and not (frame.empty and len(frame.columns) == 0):
            raise SourceError(
                f"{source.name}.{self.entity}: {path} lacks required column(s) "
                f"{missing}; it has {list(frame.columns)}"
            )
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if frame.index.name == "line":
            origin = [f"{name} line {n}" for n in frame.index]
        else:
            origin = [f"{name} row {n}" for n in range(1, len(frame) + 1)]
        out = frame.reindex(columns=list(self.required_columns))
        return out.assign(**{ORIGIN: origin, DROP_DAY: day}).reset_index(drop=True)


#: Frames read while :func:`reads_cached` is active, by reader, path and file version.
_read_cache: dict[tuple, pd.DataFrame] | None = None


@contextlib.contextmanager
def reads_cached() -> Iterator[None]:
    """Within it, a file is read once for every entity and day that reads it.

    For bulk landing (``cva land``): a folder of exports is read whole by every entity of
    every day. A file that changed (size or modification time) is read again.
    """
    global _read_cache
    outer = _read_cache
    _read_cache = {} if outer is None else outer
    try:
        yield
    finally:
        _read_cache = outer


def _cached_read(reader: Reader, path: str) -> pd.DataFrame:
    if _read_cache is None:
        return reader(path)
    from cva_tasks import storage

    fs, fs_path = storage.filesystem(path)
    info = fs.info(fs_path)
    version = (info.get("size"), info.get("mtime") or info.get("LastModified") or info.get("ETag"))
    key = (reader, path, version)
    if key not in _read_cache:
        _read_cache[key] = reader(path)
    return _read_cache[key].copy()


class EntitySpec(Protocol):
    """What a source's entity declares: :class:`SqlEntity`, :class:`FileEntity`,
    :class:`~cva_tasks.sources.joined.JoinedFileEntity`."""

    @property
    def entity(self) -> str: ...

    @property
    def suite(self) -> str: ...

    @property
    def rereads(self) -> bool: ...

    def extract(self, source: Source, interval: Interval, settings: Settings) -> pd.DataFrame: ...


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
        lookback_hours: how far back its runs read for late rows, when the source knows
            better than ``CVA_EXTRACT_LOOKBACK_HOURS`` (None: that setting);
            ``CVA_EXTRACT_LOOKBACK_HOURS_<NAME>`` overrides both.
        timezone: IANA zone of its timestamps that carry no offset (a shop's local
            time); they are converted to UTC before any watermark compares them.
            ``CVA_SOURCE_TIMEZONE_<NAME>`` overrides it.
        max_failing_share: share of an entity-day's rows that may break row-level rules
            before the run fails, when the source knows better than
            ``CVA_MAX_FAILING_SHARE`` (None: that setting); ``CVA_MAX_FAILING_SHARE_<NAME>``
            overrides both.
    """

    name: str
    description: str
    entities: tuple[EntitySpec, ...]
    start_date: date
    conn_id: str | None = None
    location_env: str | None = None
    default_location: str | None = None
    end_date: date | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    lookback_hours: int | None = None
    timezone: str = "UTC"
    max_failing_share: float | None = None

    def __post_init__(self) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"source {self.name}: {self.timezone!r} is no IANA zone") from exc
        share = self.max_failing_share
        if share is not None and not 0.0 <= share <= 1.0:
            raise ValueError(f"source {self.name}: max_failing_share {share} is not in [0, 1]")

    def zone(self, settings: Settings) -> str:
        """The zone its timestamps without an offset are in."""
        return settings.timezone_for(self.name, self.timezone)

    def failing_share(self, settings: Settings) -> float:
        """The share of an entity-day's rows that may break row-level rules."""
        return settings.max_failing_share_for(self.name, self.max_failing_share)

    def entity(self, name: str) -> EntitySpec:
        for spec in self.entities:
            if spec.entity == name:
                return spec
        raise KeyError(f"source {self.name!r} has no entity {name!r}")

    def lookback(self, settings: Settings) -> timedelta:
        """How far before its interval a run of this source reads."""
        hours = settings.extract_lookback_hours_for(self.name, self.lookback_hours)
        return timedelta(hours=hours)

    def location(self, settings: Settings) -> str:
        """Where the files are: ``location_env`` when set, else ``default_location``."""
        value = (self.location_env and settings.variable(self.location_env)) or (
            self.default_location
        )
        if not value:
            raise SourceError(f"{self.name}: no location; set {self.location_env}")
        return settings.resolve_location(value)
