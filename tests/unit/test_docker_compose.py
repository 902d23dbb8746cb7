"""docker-compose.yaml cannot be run here (no Docker engine): check what can be checked."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def airflow_env(compose) -> dict:
    return compose["services"]["airflow-scheduler"]["environment"]


def test_services_of_an_airflow_3_stack(compose):
    services = set(compose["services"])
    assert {
        "postgres",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    } <= services


def test_image_matches_the_pinned_airflow_version(compose):
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    airflow = next(p for p in pins if p.startswith("apache-airflow[postgres]=="))
    version = airflow.split("==")[1]
    image = compose["services"]["airflow-scheduler"]["image"]
    assert image == f"apache/airflow:{version}-python3.11"


def test_every_registered_source_is_configured(compose):
    from cva_tasks.connections import env_var_name
    from cva_tasks.sources.registry import all_sources

    env = airflow_env(compose)
    for source in all_sources():
        if source.conn_id:
            assert env_var_name(source.conn_id) in env, source.name
        if source.location_env:
            assert source.location_env in env, source.name


def test_dags_folder_is_the_mounted_project(compose):
    env = airflow_env(compose)
    volumes = compose["services"]["airflow-scheduler"]["volumes"]
    mount = next(v.split(":")[1] for v in volumes if v.startswith("./:"))
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == f"{mount}/dags"
    assert (ROOT / "dags").is_dir()


def test_databases_named_in_connections_are_created(compose):
    init_sql = (ROOT / "docker" / "postgres-init.sql").read_text()
    created = set(re.findall(r"CREATE DATABASE (\w+)", init_sql))
    env = airflow_env(compose)
    for key, uri in env.items():
        if key.startswith("AIRFLOW_CONN_") and uri.startswith("postgres"):
            assert urlsplit(uri).path.lstrip("/") in created, key
    metadata = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).path.lstrip("/")
    assert metadata == compose["services"]["postgres"]["environment"]["POSTGRES_DB"]
