"""The deployment (Dockerfile, docker-compose.yaml, .env.example), checked without Docker.

There is no Docker engine here, so this checks what `docker compose config` and a
reader would: the file's structure after interpolation with .env.example, that every
``AIRFLOW__SECTION__KEY`` is an option of the installed Airflow, every ``CVA_*`` a
setting, every ``AIRFLOW_CONN_*`` a connection the code uses, the image built from
the pinned Airflow with the lock file, and the auth set-up. Each check is a function
that returns the problems it finds; a ``*_can_fail`` test feeds it a broken copy.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shlex
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
PG_INIT = ROOT / "docker" / "postgres-init.sh"
AUTH_SCRIPT = ROOT / "docker" / "simple_auth_passwords.py"

#: `$$`, `${VAR}`, `${VAR:-default}`, `${VAR:?error}` ... and `$VAR`, as compose reads them.
_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
_AIRFLOW_OPTION = re.compile(r"AIRFLOW__([A-Z0-9_]+?)__([A-Z0-9_]+)")
_DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
_RESTART = {"no", "always", "on-failure", "unless-stopped"}


# --- reading the files ------------------------------------------------------------


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def filled_env() -> dict[str, str]:
    """.env.example with every empty value (the secrets) filled as a user would."""
    return {k: v or f"test{k.lower().replace('_', '')}" for k, v in env_example().items()}


def interpolate_text(text: str, env: dict[str, str]) -> str:
    def substitute(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        value, op, arg = env.get(name), match["op"], match["arg"]
        is_set = value is not None and (value != "" or not (op or "").startswith(":"))
        if op and op.endswith("-"):
            return value if is_set else arg
        if op and op.endswith("?"):
            if not is_set:
                raise KeyError(f"{name}: {arg}")
            return value
        if op and op.endswith("+"):
            return arg if is_set else ""
        return value or ""

    return _REFERENCE.sub(substitute, text)


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """Every string of the parsed file interpolated, as `docker compose config` does."""
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    if isinstance(node, str):
        return interpolate_text(node, env)
    return node


def strings_of(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in [k, *strings_of(v)] if isinstance(s, str)]
    if isinstance(node, list):
        return [s for v in node for s in strings_of(v)]
    return [node] if isinstance(node, str) else []


def variables_used(raw: dict) -> set[str]:
    """Names of the ``${VAR}`` (and ``$VAR``) references in the parsed file."""
    found = set()
    for text in strings_of(raw):
        for match in _REFERENCE.finditer(text):
            if not match["escaped"]:
                found.add(match["braced"] or match["named"])
    return found


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return interpolate(raw, filled_env())


def airflow_env(compose) -> dict:
    return compose["services"]["airflow-scheduler"]["environment"]


def airflow_services(compose) -> dict[str, dict]:
    return {
        name: s
        for name, s in compose["services"].items()
        if any(k.startswith("AIRFLOW__") for k in s.get("environment", {}))
    }


def pinned_airflow() -> str:
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    airflow = next(p for p in pins if p.startswith("apache-airflow[postgres]=="))
    return airflow.split("==")[1]


# --- the checks -------------------------------------------------------------------


def structure_problems(compose: dict) -> list[str]:
    """What `docker compose config` and a production set-up need of the structure."""
    problems = []
    services = compose.get("services") or {}
    declared = set(compose.get("volumes") or {})
    allowed_top = {"version", "name", "services", "volumes", "networks", "configs", "secrets"}
    problems += [
        f"unknown top-level key {k}"
        for k in compose
        if k not in allowed_top and not k.startswith("x-")
    ]
    for name, service in services.items():
        if "image" not in service and "build" not in service:
            problems.append(f"{name}: neither image nor build")
        restart = service.get("restart")
        if restart not in _RESTART:
            problems.append(f"{name}: restart policy {restart!r}")
        one_shot = restart == "no"
        test = (service.get("healthcheck") or {}).get("test")
        if not one_shot and not (
            isinstance(test, str) or (test and test[0] in ("CMD", "CMD-SHELL"))
        ):
            problems.append(f"{name}: no healthcheck")
        depends = service.get("depends_on") or {}
        if not isinstance(depends, dict):
            problems.append(f"{name}: depends_on without conditions")
            depends = {}
        for other, spec in depends.items():
            condition = (spec or {}).get("condition")
            if other not in services:
                problems.append(f"{name}: depends on {other}, which is no service")
            elif condition not in _DEPENDS_CONDITIONS:
                problems.append(f"{name}: depends on {other} with condition {condition!r}")
            elif condition == "service_healthy" and "healthcheck" not in services[other]:
                problems.append(f"{name}: waits for {other} to be healthy; it has no healthcheck")
            elif (
                condition == "service_completed_successfully"
                and services[other].get("restart") != "no"
            ):
                problems.append(f"{name}: waits for {other} to complete; it restarts")
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if not source.startswith((".", "/")) and source not in declared:
                problems.append(f"{name}: volume {source} is not declared")
        for port in service.get("ports") or []:
            if not str(port).startswith("127.0.0.1:"):
                problems.append(f"{name}: port {port} is not bound to 127.0.0.1")
        for key, value in (service.get("environment") or {}).items():
            if not isinstance(value, str):
                problems.append(f"{name}: {key} is {value!r}, not a string (quote it)")
        for field in ("command", "entrypoint"):
            if "pip install" in " ".join(strings_of(service.get(field))):
                problems.append(f"{name}: installs packages at start ({field})")
    return problems


def airflow_option_problems(compose: dict) -> list[str]:
    """Every AIRFLOW__SECTION__KEY set must be an option of the installed Airflow."""
    from airflow.configuration import conf

    known = conf.configuration_description
    problems = []
    for name, service in compose["services"].items():
        for key in service.get("environment") or {}:
            if not key.startswith("AIRFLOW__"):
                continue
            match = _AIRFLOW_OPTION.fullmatch(key)
            if not match:
                problems.append(f"{name}: {key} is not AIRFLOW__SECTION__KEY")
                continue
            section, option = match[1].lower(), match[2].lower()
            options = known.get(section, {}).get("options", {})
            if option not in options and re.sub(r"_(cmd|secret)$", "", option) in options:
                option = re.sub(r"_(cmd|secret)$", "", option)  # the _CMD/_SECRET forms
            if section not in known:
                problems.append(f"{name}: {key}: Airflow has no section [{section}]")
            elif option not in known[section]["options"]:
                problems.append(f"{name}: {key}: Airflow has no option [{section}] {option}")
    return problems


def cva_variables() -> set[str]:
    from cva_tasks.models.kinds import KIND_NAMES
    from cva_tasks.settings import setting_fields
    from cva_tasks.sources.registry import all_sources

    names = {f.metadata["env"] for f in setting_fields()}
    for base in ("CVA_TRAIN_EVERY_DAYS", "CVA_PROMOTION_TOLERANCE"):
        names |= {f"{base}_{kind.upper()}" for kind in KIND_NAMES}
    return names | {s.location_env for s in all_sources() if s.location_env}


def cva_problems(compose: dict) -> list[str]:
    """Every CVA_* set is a setting or a source location, and Settings accepts the values."""
    from cva_tasks.settings import Settings, SettingsError

    known = cva_variables()
    problems = []
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        cva = {k: v for k, v in env.items() if k.startswith("CVA_")}
        problems += [f"{name}: {k} is no setting of cva" for k in cva if k not in known]
        try:
            Settings.from_env(cva)
        except SettingsError as exc:
            problems.append(f"{name}: {exc}")
    return problems


def used_connection_ids() -> set[str]:
    from cva_tasks.sources.registry import all_sources
    from cva_tasks.warehouse import DEFAULT_CONN_ID

    return {s.conn_id for s in all_sources() if s.conn_id} | {DEFAULT_CONN_ID}


def connection_problems(compose: dict) -> list[str]:
    from cva_tasks.connections import env_var_name, uri_to_sqlalchemy_url

    known = {env_var_name(c) for c in used_connection_ids()}
    problems = []
    for name, service in compose["services"].items():
        for key, uri in (service.get("environment") or {}).items():
            if not key.startswith("AIRFLOW_CONN_"):
                continue
            if key not in known:
                problems.append(f"{name}: {key} is no connection the code uses")
            try:
                uri_to_sqlalchemy_url(uri)
            except ValueError as exc:
                problems.append(f"{name}: {key}: {exc}")
    return problems


def dockerfile_problems(text: str, version: str) -> list[str]:
    """Built from the pinned Airflow, with the lock file installed as the airflow user."""
    problems = []
    lines = re.sub(r"\\\n", " ", text).splitlines()
    instructions = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    froms = [ln.split()[1] for ln in instructions if ln.upper().startswith("FROM ")]
    if froms != [f"apache/airflow:{version}-python3.11"]:
        problems.append(f"base image {froms}, not apache/airflow:{version}-python3.11")
    user, copied, installed = "airflow", set(), False
    for ln in instructions:
        word, _, rest = ln.partition(" ")
        if word.upper() == "USER":
            user = rest.strip()
        elif word.upper() == "COPY":
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            copied |= {Path(p).name for p in parts[:-1]}
        elif word.upper() == "RUN" and re.search(r"pip install .*-r \S*requirements\.lock", rest):
            installed = True
            if user in ("root", "0"):
                problems.append("pip installs the lock file as root")
            if "requirements.lock" not in copied:
                problems.append("requirements.lock is installed before it is copied")
            if "apache-airflow==${AIRFLOW_VERSION}" not in rest:
                problems.append("the lock is installed without apache-airflow==${AIRFLOW_VERSION}")
    if not installed:
        problems.append("requirements.lock is not installed at build time")
    problems += [
        f"{d}/ is not copied into the image"
        for d in ("dags", "plugins", "expectations")
        if d not in copied
    ]
    return problems


def undefined_variables(raw: dict, defined: set[str]) -> set[str]:
    return variables_used(raw) - defined


def init_script(compose: dict) -> str:
    """airflow-init's bash script after compose's interpolation (`$$` is `$` again)."""
    command = compose["services"]["airflow-init"]["command"]
    assert command[0] == "-c" and compose["services"]["airflow-init"]["entrypoint"] == "/bin/bash"
    return command[1]


def ownership_problems(compose: dict) -> list[str]:
    """airflow-init gives every volume mounted into Airflow to AIRFLOW_UID:0."""
    script = init_script(compose)
    uid = compose["x-airflow-common"]["user"].split(":")[0]
    chowned = set()
    for line in script.splitlines():
        words = shlex.split(line) if line.strip().startswith("chown") else []
        if words[:3] == ["chown", "-R", f"{uid}:0"]:
            chowned |= set(words[3:])
    mounted = {
        v.split(":")[1] for s in airflow_services(compose).values() for v in s.get("volumes") or []
    }
    return [f"{path} is mounted but not given to {uid}:0" for path in sorted(mounted - chowned)]


# --- tests: the structure -----------------------------------------------------------


def test_services_of_an_airflow_3_celery_stack(compose):
    services = set(compose["services"])
    assert {
        "postgres",
        "redis",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
    } <= services
    for name, service in airflow_services(compose).items():
        assert service["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
    broker = urlsplit(airflow_env(compose)["AIRFLOW__CELERY__BROKER_URL"])
    assert (broker.scheme, broker.hostname) == ("redis", "redis")


def test_structure_as_docker_compose_config_requires(compose):
    assert structure_problems(compose) == []


def test_structure_check_can_fail(compose):
    broken = copy.deepcopy(compose)
    services = broken["services"]
    del services["airflow-scheduler"]["healthcheck"]
    services["airflow-triggerer"]["depends_on"]["airflow-inti"] = {"condition": "service_healthy"}
    services["airflow-apiserver"]["ports"] = ["8080:8080"]
    services["airflow-worker"]["volumes"].append("undeclared-volume:/data")
    services["airflow-worker"]["environment"]["AIRFLOW__CORE__LOAD_EXAMPLES"] = False
    services["airflow-dag-processor"]["restart"] = "sometimes"
    services["airflow-scheduler"]["command"] = "bash -c 'pip install -r x.txt && airflow scheduler'"
    del services["redis"]["image"]
    broken["top-level-typo"] = {}
    assert set(structure_problems(broken)) == {
        "unknown top-level key top-level-typo",
        "airflow-apiserver: port 8080:8080 is not bound to 127.0.0.1",
        "airflow-scheduler: no healthcheck",
        "airflow-scheduler: installs packages at start (command)",
        "airflow-dag-processor: restart policy 'sometimes'",
        "airflow-worker: volume undeclared-volume is not declared",
        "airflow-worker: AIRFLOW__CORE__LOAD_EXAMPLES is False, not a string (quote it)",
        "airflow-triggerer: depends on airflow-inti, which is no service",
        "redis: neither image nor build",
    }


def test_the_worker_can_be_scaled(compose):
    worker = compose["services"]["airflow-worker"]
    assert worker["command"] == "celery worker"
    assert "container_name" not in worker and "ports" not in worker
    assert worker["environment"]["DUMB_INIT_SETSID"] == "0"


def test_the_dag_processor_and_the_workers_agree_on_the_shards(compose):
    # The DAG processor maps score and recommend over the parts; a worker given another
    # count would parse another DAG than the one the scheduler queued tasks of.
    services = compose["services"]
    counts = {
        name: services[name]["environment"].get("CVA_SCORE_SHARDS")
        for name in ("airflow-dag-processor", "airflow-worker", "airflow-scheduler")
    }
    assert set(counts.values()) == {"1"}, counts
    scaled = interpolate(yaml.safe_load(COMPOSE.read_text()), {**filled_env(), "SCORE_SHARDS": "4"})
    assert {scaled["services"][name]["environment"]["CVA_SCORE_SHARDS"] for name in counts} == {"4"}
    assert not cva_problems(scaled)


def test_every_airflow_service_uses_the_built_image(compose):
    for name, service in airflow_services(compose).items():
        assert service["build"] == ".", name
        assert service["image"] == filled_env()["AIRFLOW_IMAGE_NAME"], name
        assert not any("_PIP_ADDITIONAL_REQUIREMENTS" in k for k in service["environment"]), name


# --- tests: the variables ------------------------------------------------------------


def test_every_airflow_option_is_real(compose):
    assert airflow_option_problems(compose) == []


def test_airflow_option_check_can_fail(compose):
    broken = copy.deepcopy(compose)
    env = broken["services"]["airflow-apiserver"]["environment"]
    # Today's main branch sets these two: Airflow 3.3 has no such section.
    env["AIRFLOW__SIMPLE_AUTH_MANAGER__USERS"] = "admin:admin"
    env["AIRFLOW__SIMPLE_AUTH_MANAGER__PASSWORDS_FILE"] = "/opt/airflow/passwords.json"
    env["AIRFLOW__CORE__MADE_UP_OPTION"] = "1"
    assert airflow_option_problems(broken) == [
        "airflow-apiserver: AIRFLOW__SIMPLE_AUTH_MANAGER__USERS: "
        "Airflow has no section [simple_auth_manager]",
        "airflow-apiserver: AIRFLOW__SIMPLE_AUTH_MANAGER__PASSWORDS_FILE: "
        "Airflow has no section [simple_auth_manager]",
        "airflow-apiserver: AIRFLOW__CORE__MADE_UP_OPTION: "
        "Airflow has no option [core] made_up_option",
    ]


def test_every_cva_variable_is_a_setting(compose):
    assert cva_problems(compose) == []


def test_cva_variable_check_can_fail(compose):
    broken = copy.deepcopy(compose)
    env = broken["services"]["airflow-worker"]["environment"]
    env["CVA_LAKE"] = "/opt/cva-data/lake"
    env["CVA_MAX_FAILING_SHARE"] = "5%"
    problems = cva_problems(broken)
    assert problems == [
        "airflow-worker: CVA_LAKE is no setting of cva",
        "airflow-worker: CVA_MAX_FAILING_SHARE: '5%' is not a number",
    ]


def test_every_registered_source_is_configured(compose):
    from cva_tasks.connections import env_var_name
    from cva_tasks.sources.registry import all_sources

    env = airflow_env(compose)
    wanted = [
        name
        for source in all_sources()
        for name in (
            env_var_name(source.conn_id) if source.conn_id else None,
            source.location_env,
        )
        if name
    ]
    # Adding a source takes a line in docker-compose.yaml (README "Adding a source").
    missing = [name for name in wanted if name not in env]
    assert missing == [], f"add {missing} to x-airflow-common's environment in docker-compose.yaml"


def test_every_connection_is_one_the_code_uses(compose):
    assert connection_problems(compose) == []
    assert "AIRFLOW_CONN_CVA_WAREHOUSE" in airflow_env(compose)


def test_connection_check_can_fail(compose):
    broken = copy.deepcopy(compose)
    env = broken["services"]["airflow-scheduler"]["environment"]
    env["AIRFLOW_CONN_CVA_CRM"] = "postgres://cva:x@postgres:5432/crm"
    env["AIRFLOW_CONN_CVA_WAREHOUSE"] = "mysql://cva:x@mysql/warehouse"
    problems = connection_problems(broken)
    assert (
        problems[0] == "airflow-scheduler: AIRFLOW_CONN_CVA_WAREHOUSE: unsupported connection "
        "type 'mysql' in mysql://cva:***@mysql/warehouse"
    )
    assert problems[1:] == [
        "airflow-scheduler: AIRFLOW_CONN_CVA_CRM is no connection the code uses"
    ]


def test_databases_named_in_connections_are_created(compose):
    init_sql = PG_INIT.read_text()
    created = set(re.findall(r"CREATE DATABASE (\w+)", init_sql))
    env = airflow_env(compose)
    for key, uri in env.items():
        if key.startswith("AIRFLOW_CONN_") and uri.startswith("postgres"):
            assert urlsplit(uri).path.lstrip("/") in created, key
            assert urlsplit(uri).username == "cva" and "CREATE USER cva" in init_sql, key
    metadata = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).path.lstrip("/")
    assert metadata == compose["services"]["postgres"]["environment"]["POSTGRES_DB"]
    mounts = compose["services"]["postgres"]["volumes"]
    assert f"./{PG_INIT.relative_to(ROOT)}:/docker-entrypoint-initdb.d/10-cva.sh:ro" in mounts
    assert os.access(PG_INIT, os.X_OK)


def test_passwords_in_connections_are_the_ones_postgres_creates(compose):
    env, pg = airflow_env(compose), compose["services"]["postgres"]["environment"]
    metadata = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert (metadata.username, metadata.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
    for key in ("AIRFLOW_CONN_CVA_DEMO_SHOP", "AIRFLOW_CONN_CVA_WAREHOUSE"):
        assert urlsplit(env[key]).password == pg["PG_CVA_PASSWORD"], key
    redis = compose["services"]["redis"]
    assert (
        urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).password
        == redis["environment"]["REDISCLI_AUTH"]
    )
    assert redis["command"] == [
        "redis-server",
        "--requirepass",
        redis["environment"]["REDISCLI_AUTH"],
    ]


# --- tests: .env ---------------------------------------------------------------------


def test_env_example_defines_every_variable_the_compose_file_uses(raw):
    assert undefined_variables(raw, set(env_example())) == set()
    assert variables_used(raw), "no ${VAR} found: the check would pass on anything"


def test_env_example_check_can_fail(raw):
    broken = copy.deepcopy(raw)
    broken["services"]["redis"]["environment"]["REDISCLI_AUTH"] = "${REDIS_PASWORD}"
    broken["services"]["postgres"]["environment"]["X"] = "$UNDEFINED and $${ESCAPED}"
    assert undefined_variables(broken, set(env_example())) == {"REDIS_PASWORD", "UNDEFINED"}


def test_secrets_come_from_env_and_must_be_set(raw):
    """Every secret in .env.example is empty, and compose refuses to start without it."""
    secrets = {k for k, v in env_example().items() if not v}
    assert {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "FERNET_KEY", "JWT_SECRET"} <= secrets
    for name in secrets:
        with pytest.raises(KeyError, match=name):
            interpolate(raw, {**filled_env(), name: ""})
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in (ROOT / ".dockerignore").read_text().splitlines()


def secret_problems(raw: dict) -> list[str]:
    """Passwords, keys and secrets are `${...}` of .env, never literals in the file."""
    env = filled_env()
    from_env = {v for k, v in env.items() if not env_example()[k]}
    compose = interpolate(raw, env)
    secretive = re.compile(r"PASSWORD|SECRET|FERNET|_AUTH$")
    problems, seen = [], 0
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if secretive.search(key) and not key.endswith("_FILE"):
                seen += 1
                if value not in from_env:
                    problems.append(f"{name}: {key} is not set from .env")
            password = urlsplit(value).password if "://" in value else None
            if password is not None:
                seen += 1
                if password not in from_env:
                    problems.append(f"{name}: {key} has a password that is not from .env")
    return problems if seen else ["no secret found: the check would pass on anything"]


def test_no_secret_is_written_in_the_compose_file(raw):
    assert secret_problems(raw) == []


def test_secret_check_can_fail(raw):
    broken = copy.deepcopy(raw)
    env = broken["services"]["postgres"]["environment"]
    env["POSTGRES_PASSWORD"] = "airflow"
    env["AIRFLOW_CONN_CVA_WAREHOUSE"] = "postgres://cva:cva@postgres:5432/warehouse"
    assert secret_problems(broken) == [
        "postgres: POSTGRES_PASSWORD is not set from .env",
        "postgres: AIRFLOW_CONN_CVA_WAREHOUSE has a password that is not from .env",
    ]


# --- tests: the image ----------------------------------------------------------------


def test_dockerfile_extends_the_pinned_airflow_with_the_lock_file():
    assert dockerfile_problems(DOCKERFILE.read_text(), pinned_airflow()) == []


def test_dockerfile_check_can_fail():
    good = DOCKERFILE.read_text()
    version = pinned_airflow()
    older = good.replace(f"apache/airflow:{version}-", "apache/airflow:3.3.1-")
    assert dockerfile_problems(older, version) == [
        f"base image ['apache/airflow:3.3.1-python3.11'], not apache/airflow:{version}-python3.11"
    ]
    as_root = good.replace("USER airflow\n", "")
    assert dockerfile_problems(as_root, version) == ["pip installs the lock file as root"]
    no_lock = re.sub(r"RUN pip install [^\n]*requirements\.lock\n", "", good)
    assert dockerfile_problems(no_lock, version) == [
        "requirements.lock is not installed at build time"
    ]
    no_dags = good.replace("COPY --chown=airflow:0 dags /opt/cva/dags\n", "")
    assert dockerfile_problems(no_dags, version) == ["dags/ is not copied into the image"]


def dockerfile_env(text: str) -> dict[str, str]:
    """The variables the Dockerfile's ENV instructions set."""
    env = {}
    for line in re.sub(r"\\\n", " ", text).splitlines():
        if line.startswith("ENV "):
            env.update(item.split("=", 1) for item in shlex.split(line[4:]))
    return env


def test_the_image_sets_only_real_options_and_settings(compose):
    env = dockerfile_env(DOCKERFILE.read_text())
    assert {"AIRFLOW__CORE__DAGS_FOLDER", "CVA_HOME"} <= set(env)
    image = {"services": {"Dockerfile": {"environment": env}}}
    assert airflow_option_problems(image) == []
    assert cva_problems(image) == []
    for key, value in env.items():
        assert airflow_env(compose).get(key, value) == value, f"{key}: image and compose differ"


def test_dags_folder_is_the_one_baked_into_the_image(compose):
    text = DOCKERFILE.read_text()
    for folder, option in (("dags", "DAGS_FOLDER"), ("plugins", "PLUGINS_FOLDER")):
        target = re.search(rf"^COPY \S+ {folder} (\S+)$", text, re.M)
        assert target, folder
        assert airflow_env(compose)[f"AIRFLOW__CORE__{option}"] == target[1]
        assert (ROOT / folder).is_dir()
    expectations = re.search(r"^COPY \S+ expectations (\S+)$", text, re.M)
    assert expectations and airflow_env(compose)["CVA_EXPECTATIONS_DIR"] == expectations[1]


def test_the_build_context_leaves_out_local_state():
    ignored = set((ROOT / ".dockerignore").read_text().splitlines())
    assert {".env", ".venv", ".git", ".airflow", ".cva"} <= ignored


# --- tests: init, ownership, auth -----------------------------------------------------


def test_init_migrates_and_hands_the_volumes_to_airflow_uid(compose):
    init = compose["services"]["airflow-init"]
    assert init["user"] == "0:0" and init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    script = init_script(compose)
    assert "/entrypoint airflow version" in script  # the entrypoint migrates first
    result = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert result.returncode == 0, result.stderr
    assert ownership_problems(compose) == []
    assert compose["x-airflow-common"]["user"] == f"{filled_env()['AIRFLOW_UID']}:0"


def test_ownership_check_can_fail(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["airflow-worker"]["volumes"].append("airflow-logs:/opt/airflow/extra")
    assert ownership_problems(broken) == ["/opt/airflow/extra is mounted but not given to 50000:0"]


def load_auth_script():
    spec = importlib.util.spec_from_file_location("simple_auth_passwords", AUTH_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_ui_user_gets_a_password_from_env(compose):
    """Users from [core] simple_auth_manager_users; each has its variable in the API server."""
    script = load_auth_script()
    api = compose["services"]["airflow-apiserver"]
    env = api["environment"]
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("simple_auth_manager.SimpleAuthManager")
    users = [u.split(":")[0] for u in env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",")]
    assert users == ["admin", "viewer"]
    for user in users:
        variable = script.password_variable(user)
        assert env[variable] == filled_env()[variable], user
        assert variable not in airflow_env(compose), f"{variable} leaks beyond the API server"
    assert api["command"][-1].startswith(f"python /opt/cva/docker/{AUTH_SCRIPT.name} && ")
    assert api["command"][-1].endswith("exec airflow api-server")
    assert f"/opt/cva/docker/{AUTH_SCRIPT.name}" in DOCKERFILE.read_text()


def test_auth_script_writes_the_file_airflow_reads(tmp_path):
    target = tmp_path / "passwords.json"
    env = {
        **os.environ,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,data-team:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(target),
        "SIMPLE_AUTH_PASSWORD_ADMIN": "a'b\"c:d,e",
        "SIMPLE_AUTH_PASSWORD_DATA_TEAM": "second",
    }
    done = subprocess.run([sys.executable, str(AUTH_SCRIPT)], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert json.loads(target.read_text()) == {"admin": "a'b\"c:d,e", "data-team": "second"}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_auth_script_refuses_a_user_without_password(tmp_path):
    target = tmp_path / "passwords.json"
    env = {
        **os.environ,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(target),
        "SIMPLE_AUTH_PASSWORD_ADMIN": "set",
    }
    env.pop("SIMPLE_AUTH_PASSWORD_VIEWER", None)
    done = subprocess.run([sys.executable, str(AUTH_SCRIPT)], env=env, capture_output=True)
    assert done.returncode != 0
    assert "SIMPLE_AUTH_PASSWORD_VIEWER" in done.stderr.decode()
    assert not target.exists()
