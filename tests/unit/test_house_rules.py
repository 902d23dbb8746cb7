"""The rules of the house, checked on the source: layering, size, settings, lake paths."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "cva_tasks"
MAX_LINES = 600
#: A longer module says why in its docstring with this phrase.
LONG_REASON = "This module is long because"


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every cva_tasks module ``name`` imports, at the top or inside a function."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]

    def resolve(target: str) -> str | None:
        while target and target not in known:
            target = target.rsplit(".", 1)[0] if "." in target else ""
        return target or None

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parts, *([base] if base else [])])
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        for target in targets:
            resolved = resolve(target)
            if resolved and resolved != name:
                found.add(resolved)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_check_can_fail():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_steps_are_the_only_task_facing_layer():
    """Nothing below the steps imports a step; the DAG files import only steps.

    The ``cva_tasks.commands_*`` modules sit beside the DAG files (``cva land`` runs a
    source DAG's steps without Airflow), so they may import steps too.
    """
    graph = import_graph()
    for name, imported in graph.items():
        if not name.startswith(("cva_tasks.steps", "cva_tasks.commands_")):
            steps = sorted(m for m in imported if m.startswith("cva_tasks.steps"))
            assert not steps, f"{name} imports the task-facing layer {steps}"
    for dag_file in (ROOT / "dags").glob("*.py"):
        text = dag_file.read_text()
        called = set(re.findall(r"from (cva_tasks[.\w]*) import", text))
        allowed = {"cva_tasks.steps", "cva_tasks.settings", "cva_tasks.models.kinds"}
        allowed |= {"cva_tasks.sources.registry", "cva_tasks.sources.base", "cva_tasks.quality"}
        extra = {m for m in called if not m.startswith("cva_tasks.steps.")} - allowed
        assert not extra, f"{dag_file.name} reaches past the steps into {sorted(extra)}"


@pytest.mark.parametrize("name", sorted(modules()), ids=str)
def test_modules_stay_small_or_say_why(name):
    path = modules()[name]
    lines = len(path.read_text().splitlines())
    if lines > MAX_LINES:
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert LONG_REASON in docstring, (
            f"{path.relative_to(ROOT)} has {lines} lines (> {MAX_LINES}) and no "
            f"'{LONG_REASON} ...' at its top"
        )


def _environment_reads(tree: ast.AST) -> list[str]:
    """``CVA_*`` names read through ``os.environ`` / ``os.getenv`` in a module."""
    reads = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = ast.unparse(node.func.value)
            if (owner == "os.environ" and node.func.attr in ("get", "pop")) or (
                owner == "os" and node.func.attr == "getenv"
            ):
                key = node.args[0] if node.args else None
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and ast.unparse(node.value) == "os.environ"
        ):
            key = node.slice
        if key is not None:
            text = ast.unparse(key)
            # A connection's AIRFLOW_CONN_<ID> is Airflow's, read where connections are.
            if "CVA_" in text or not (isinstance(key, ast.Constant) or "env_var_name" in text):
                reads.append(text)
    return reads


def test_environment_read_check_can_fail():
    tree = ast.parse("import os\nx = os.environ.get('CVA_X')\ny = os.environ['CVA_Y']\n")
    assert _environment_reads(tree) == ["'CVA_X'", "'CVA_Y'"]


def test_settings_is_the_only_reader_of_cva_variables():
    offenders = {}
    for path in [
        *PACKAGE.rglob("*.py"),
        *(ROOT / "dags").glob("*.py"),
        *(ROOT / "benchmarks").glob("*.py"),
    ]:
        if path == PACKAGE / "settings.py":
            continue
        reads = _environment_reads(ast.parse(path.read_text()))
        if reads:
            offenders[str(path.relative_to(ROOT))] = reads
    assert offenders == {}


def test_models_get_their_values_passed_in():
    """No model module builds the settings: a day trainer is handed them, models get values."""
    for path in (PACKAGE / "models").rglob("*.py"):
        assert "from_env(" not in path.read_text(), path.relative_to(ROOT)


def test_lake_paths_are_built_in_one_module():
    """Partition folders (``ds=YYYY-MM-DD``) are named only by :mod:`cva_tasks.lake`."""
    pattern = re.compile(r"""f?["']ds=[{%]""")
    assert pattern.search('uri = f"{root}/" + f"ds={day.isoformat()}"'), "the check can fail"
    allowed = {PACKAGE / "lake.py"}
    offenders = [
        str(path.relative_to(ROOT))
        for path in [*PACKAGE.rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
        if path not in allowed and pattern.search(path.read_text())
    ]
    assert offenders == []


def test_the_readme_configuration_table_is_the_settings():
    from cva_tasks.settings import markdown_table

    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "run `cva config --markdown` and paste it into the README"
