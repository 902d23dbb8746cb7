"""Resolve an Airflow connection id to a SQLAlchemy URL.

Inside Airflow the connection comes from wherever Airflow keeps it (metadata DB,
secrets backend, ``AIRFLOW_CONN_*``). Outside Airflow (the ``cva`` command, unit
tests) only ``AIRFLOW_CONN_<ID>`` is read, so no metadata DB is needed. The URI
is parsed here rather than by Airflow because Airflow's parsers disagree on
``sqlite:////abs/path`` (the task runtime puts the path in ``host``, the
client API leaves it empty). ``AIRFLOW_CONN_<ID>`` may hold a URI or Airflow's JSON
form (``{"conn_type": "postgres", "host": ..., "login": ..., "password": ...}``).

Three outcomes besides a URL, kept apart because callers act differently on them:
:class:`ConnectionNotFound` (defined nowhere: a caller may fall back to a default),
:class:`ConnectionInvalid` (defined, but its value cannot be used: fix it) and
:class:`ConnectionUnreadable` (the store that holds it failed: maybe retry). Only
the first may ever lead to a fallback.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit


class ConnectionNotFound(LookupError):
    """No connection with this id is defined."""

    retryable = False


class ConnectionInvalid(ValueError):
    """The connection is defined, but its value cannot be used (never retried)."""

    retryable = False


class ConnectionUnreadable(RuntimeError):
    """Airflow could not be asked for the connection (secrets backend, API server down)."""

    retryable = True


_DRIVERS = {
    "sqlite": "sqlite",
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "postgresql+psycopg2": "postgresql+psycopg2",
    "duckdb": "duckdb",
}


def env_var_name(conn_id: str) -> str:
    return "AIRFLOW_CONN_" + conn_id.upper()


def uri_to_sqlalchemy_url(uri: str) -> str:
    """Turn an Airflow connection URI into a SQLAlchemy URL.

    >>> uri_to_sqlalchemy_url("postgres://postgres@127.0.0.1:5432/test")
    'postgresql+psycopg2://postgres@127.0.0.1:5432/test'
    >>> uri_to_sqlalchemy_url("sqlite:////tmp/shop.db")
    'sqlite:////tmp/shop.db'

    Raises:
        ConnectionInvalid: a type other than SQLite, PostgreSQL or DuckDB (the
            password is masked in the message).
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in _DRIVERS:
        raise ConnectionInvalid(f"unsupported connection type {scheme!r} in {_redact(uri)}")
    if scheme == "sqlite":
        # Airflow's own form (sqlite://%2Fabs%2Fshop.db) puts the path in the host;
        # the SQLAlchemy forms are sqlite:////abs/shop.db and sqlite:///relative.db.
        path = unquote(parts.netloc) if parts.netloc else unquote(parts.path)[1:]
        return f"sqlite:///{path}"
    rest = uri.split("://", 1)[1]
    return f"{_DRIVERS[scheme]}://{rest}"


def url_from_fields(
    conn_type: str | None,
    host: str | None = None,
    login: str | None = None,
    password: str | None = None,
    port: int | str | None = None,
    schema: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """A SQLAlchemy URL from an Airflow connection's fields (its JSON form or object).

    ``sqlite`` and ``duckdb`` take the file path from ``host`` (as their Airflow
    providers do); ``extra`` becomes the URL's query (e.g. ``options`` for libpq).

    Raises:
        ConnectionInvalid: an unsupported type (the password is never in the message).
    """
    kind = (conn_type or "").lower()
    if kind not in _DRIVERS:
        where = f"{kind}://{host or ''}" if host else repr(kind)
        raise ConnectionInvalid(f"unsupported connection type {kind!r} ({where})")
    if kind in ("sqlite", "duckdb"):
        return f"{_DRIVERS[kind]}:///{host or schema or ''}"
    auth = ""
    if login:
        auth = quote(login, safe="")
        if password:
            auth += ":" + quote(password, safe="")
        auth += "@"
    where = f":{port}" if port else ""
    query = f"?{urlencode(extra)}" if extra else ""
    return f"{_DRIVERS[kind]}://{auth}{host or ''}{where}/{schema or ''}{query}"


def _from_environment(conn_id: str, value: str) -> str:
    name = env_var_name(conn_id)
    if not value.strip():
        raise ConnectionInvalid(
            f"{name} is set but empty: give it a URI, or unset it to leave {conn_id!r} undefined"
        )
    if not value.lstrip().startswith("{"):
        return uri_to_sqlalchemy_url(value)
    try:
        fields = json.loads(value)
    except json.JSONDecodeError as exc:
        # The message quotes only the position, not the value (it may hold a password).
        raise ConnectionInvalid(f"{name} is not a URI and not valid JSON: {exc.msg}") from None
    if not isinstance(fields, dict):
        raise ConnectionInvalid(f"{name} holds JSON that is not an object")
    extra = fields.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra) if extra.strip() else {}
    return url_from_fields(
        fields.get("conn_type"),
        fields.get("host"),
        fields.get("login"),
        fields.get("password"),
        fields.get("port"),
        fields.get("schema"),
        extra,
    )


def sqlalchemy_url(conn_id: str) -> str:
    """The SQLAlchemy URL of connection ``conn_id``.

    Raises:
        ConnectionNotFound: when neither the environment nor Airflow knows it.
        ConnectionInvalid: when it is defined but cannot be used (empty, malformed,
            an unsupported type).
        ConnectionUnreadable: when Airflow failed to look it up (anything but "not
            defined"): the connection may well exist.
    """
    value = os.environ.get(env_var_name(conn_id))
    if value is not None:
        return _from_environment(conn_id, value)
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as exc:
        raise ConnectionNotFound(
            f"connection {conn_id!r} is not defined: set {env_var_name(conn_id)} "
            f"(e.g. sqlite:////path/shop.db or postgres://user@host:5432/db) or add it "
            f"in Airflow"
        ) from exc
    except Exception as exc:  # secrets backend, API server, metadata DB: not "undefined"
        raise ConnectionUnreadable(
            f"connection {conn_id!r} could not be read from Airflow: {type(exc).__name__}: {exc}"
        ) from exc
    return url_from_fields(
        conn.conn_type,
        conn.host,
        conn.login,
        conn.password,
        conn.port,
        conn.schema,
        None,
    )


def _redact(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password:
        return uri.replace(parts.password, "***")
    return uri
