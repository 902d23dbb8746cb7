"""Find the registered sources.

A source is registered by dropping a module that defines ``SOURCE`` into
``cva_tasks/sources/`` or, for code kept outside this package, by naming its
module in ``CVA_SOURCE_MODULES`` (comma-separated dotted paths). The source
DAGs are generated from this list, so adding a source changes no DAG file.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cva_tasks.sources as package
from cva_tasks.sources.base import Source

if TYPE_CHECKING:
    from datetime import date

    from cva_tasks.settings import Settings

_SUPPORT_MODULES = {
    "base",
    "canonical",
    "joined",
    "readers",
    "registry",
    "timestamps",
    "window",
}


def module_names(extra_modules: Sequence[str] = ()) -> list[str]:
    names = [
        f"{package.__name__}.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_") and info.name not in _SUPPORT_MODULES
    ]
    return names + list(extra_modules)


def all_sources(extra_modules: Sequence[str] = ()) -> list[Source]:
    """Every registered source, sorted by name.

    Args:
        extra_modules: modules outside this package (``CVA_SOURCE_MODULES``).

    Raises:
        ValueError: when a listed module has no ``SOURCE`` or two share a name.
    """
    found: dict[str, Source] = {}
    for name in module_names(extra_modules):
        module = importlib.import_module(name)
        source = getattr(module, "SOURCE", None)
        if not isinstance(source, Source):
            raise ValueError(f"source module {name} defines no SOURCE = Source(...)")
        if source.name in found:
            raise ValueError(f"two sources are named {source.name!r} (second in {name})")
        found[source.name] = source
    return [found[key] for key in sorted(found)]


def get_source(name: str, extra_modules: Sequence[str] = ()) -> Source:
    sources = all_sources(extra_modules)
    for source in sources:
        if source.name == name:
            return source
    raise KeyError(f"no source named {name!r}; registered: {[s.name for s in sources]}")


def pipeline_sources(ds: date, settings: Settings) -> list[Source]:
    """Sources that feed the daily pipeline on ``ds``.

    Every registered source whose active period holds ``ds``, narrowed by
    ``CVA_PIPELINE_SOURCES`` when set.
    """
    return [s for s in all_sources(settings.source_modules) if feeds_pipeline(s, ds, settings)]


def feeds_pipeline(source: Source, ds: date, settings: Settings) -> bool:
    """Whether ``source`` feeds the daily pipeline on ``ds`` (see :func:`pipeline_sources`)."""
    chosen = set(settings.pipeline_sources)
    return (
        (not chosen or source.name in chosen)
        and source.start_date <= ds
        and (source.end_date is None or ds <= source.end_date)
    )
