"""Find the registered sources.

A source is registered by dropping a module that defines ``SOURCE`` into
``cva_tasks/sources/`` or, for code kept outside this package, by naming its
module in ``CVA_SOURCE_MODULES`` (comma-separated dotted paths). The source
DAGs are generated from this list, so adding a source changes no DAG file.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

import cva_tasks.sources as package
from cva_tasks.sources.base import Source

_SUPPORT_MODULES = {"base", "canonical", "readers", "registry"}


def module_names() -> list[str]:
    names = [
        f"{package.__name__}.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_") and info.name not in _SUPPORT_MODULES
    ]
    extra = os.environ.get("CVA_SOURCE_MODULES", "")
    names += [name.strip() for name in extra.split(",") if name.strip()]
    return names


def all_sources() -> list[Source]:
    """Every registered source, sorted by name.

    Raises:
        ValueError: when a listed module has no ``SOURCE`` or two share a name.
    """
    found: dict[str, Source] = {}
    for name in module_names():
        module = importlib.import_module(name)
        source = getattr(module, "SOURCE", None)
        if not isinstance(source, Source):
            raise ValueError(f"source module {name} defines no SOURCE = Source(...)")
        if source.name in found:
            raise ValueError(f"two sources are named {source.name!r} (second in {name})")
        found[source.name] = source
    return [found[key] for key in sorted(found)]


def get_source(name: str) -> Source:
    for source in all_sources():
        if source.name == name:
            return source
    raise KeyError(f"no source named {name!r}; registered: {[s.name for s in all_sources()]}")
