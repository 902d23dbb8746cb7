"""Resolve an Airflow connection id to a SQLAlchemy URL.

Inside Airflow the connection comes from wherever Airflow keeps it (metadata DB,
secrets backend, ``AIRFLOW_CONN_*``). Outside Airflow (the ``cva`` command, unit
tests) only ``AIRFLOW_CONN_<ID>`` is read, so no metadata DB is needed. The URI
is parsed here rather than by Airflow because Airflow's parsers disagree on
``sqlite:////abs/path`` (the task runtime puts the path in ``host``, the
client API leaves it empty).
"""

from __future__ import annotations

import os
from urllib.parse import quote, unquote, urlsplit


class ConnectionNotFound(LookupError):
    """No connection with this id is defined."""


_DRIVERS = {
    "sqlite": "sqlite",
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "postgresql+psycopg2": "postgresql+psycopg2",
}


def env_var_name(conn_id: str) -> str:
    return "AIRFLOW_CONN_" + conn_id.upper()


def uri_to_sqlalchemy_url(uri: str) -> str:
    """Turn an Airflow connection URI into a SQLAlchemy URL.

    >>> uri_to_sqlalchemy_url("postgres://postgres@127.0.0.1:5432/test")
    'postgresql+psycopg2://postgres@127.0.0.1:5432/test'
    >>> uri_to_sqlalchemy_url("sqlite:////tmp/shop.db")
    'sqlite:////tmp/shop.db'
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in _DRIVERS:
        raise ValueError(f"unsupported connection type {scheme!r} in {_redact(uri)}")
    if scheme == "sqlite":
        # Airflow's own form (sqlite://%2Fabs%2Fshop.db) puts the path in the host;
        # the SQLAlchemy forms are sqlite:////abs/shop.db and sqlite:///relative.db.
        path = unquote(parts.netloc) if parts.netloc else unquote(parts.path)[1:]
        return f"sqlite:///{path}"
    rest = uri.split("://", 1)[1]
    return f"{_DRIVERS[scheme]}://{rest}"


def sqlalchemy_url(conn_id: str) -> str:
    """The SQLAlchemy URL of connection ``conn_id``.

    Raises:
        ConnectionNotFound: when neither the environment nor Airflow knows it.
    """
    uri = os.environ.get(env_var_name(conn_id))
    if uri:
        return uri_to_sqlalchemy_url(uri)
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # Airflow raises its own not-found types per version
        raise ConnectionNotFound(
            f"connection {conn_id!r} is not defined: set {env_var_name(conn_id)} "
            f"(e.g. sqlite:////path/shop.db or postgres://user@host:5432/db) or add it "
            f"in Airflow"
        ) from exc
    if conn.conn_type == "sqlite":
        return f"sqlite:///{conn.host}"
    auth = ""
    if conn.login:
        auth = quote(conn.login, safe="")
        if conn.password:
            auth += ":" + quote(conn.password, safe="")
        auth += "@"
    port = f":{conn.port}" if conn.port else ""
    conn_type = conn.conn_type or ""
    return f"{_DRIVERS.get(conn_type, conn_type)}://{auth}{conn.host}{port}/{conn.schema}"


def _redact(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password:
        return uri.replace(parts.password, "***")
    return uri
