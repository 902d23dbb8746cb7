from __future__ import annotations

import pytest

from cva_tasks.connections import ConnectionNotFound, sqlalchemy_url, uri_to_sqlalchemy_url


def test_sqlite_uri_keeps_absolute_path():
    assert uri_to_sqlalchemy_url("sqlite:////tmp/a b/shop.db") == "sqlite:////tmp/a b/shop.db"


def test_postgres_uri_gets_driver_and_keeps_options():
    url = uri_to_sqlalchemy_url("postgres://u:p@db:5432/shop?options=-csearch_path%3Dx")
    assert url == "postgresql+psycopg2://u:p@db:5432/shop?options=-csearch_path%3Dx"


def test_unknown_scheme_is_refused_without_leaking_password():
    with pytest.raises(ValueError) as info:
        uri_to_sqlalchemy_url("mssql://user:secret@host/db")
    assert "secret" not in str(info.value)
    assert "mssql" in str(info.value)


def test_environment_connection_is_used(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CVA_X", "sqlite:////tmp/x.db")
    assert sqlalchemy_url("cva_x") == "sqlite:////tmp/x.db"


def test_missing_connection_names_the_variable(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_CVA_NOPE", raising=False)
    with pytest.raises(ConnectionNotFound, match="AIRFLOW_CONN_CVA_NOPE"):
        sqlalchemy_url("cva_nope")


def test_airflow_encoded_sqlite_host_form():
    assert uri_to_sqlalchemy_url("sqlite://%2Ftmp%2Fx.db") == "sqlite:////tmp/x.db"
    assert uri_to_sqlalchemy_url("sqlite:///rel.db") == "sqlite:///rel.db"
