"""The process's Great Expectations context: ephemeral, in memory, built once per process.

GX analytics are switched off and its progress bars are silenced; nothing is downloaded at run
time. Great Expectations is imported lazily (importing it takes seconds), so importing this
package is cheap, e.g. while Airflow parses DAG files.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from great_expectations.data_context.types.base import DataContextConfig

# GX must never send usage statistics. Set before GX is first imported (it is imported lazily,
# and this module is imported by the package's __init__) and, in addition,
# ``analytics_enabled=False`` is part of every context config.
os.environ["GX_ANALYTICS_ENABLED"] = "false"
# GX logs about 220 INFO lines while it is imported (mostly "Skipping registering function
# ..." of its docs decorators) before the one line a task log needs: only its warnings
# and errors are kept. Set before GX is first imported, for the same reason as above.
logging.getLogger("great_expectations").setLevel(logging.WARNING)

_DATASOURCE_NAME = "cva_pandas"
_BATCH_DEFINITION_NAME = "whole_dataframe"


def _project_config(data_docs_sites: dict | None = None) -> DataContextConfig:
    """In-memory GX project config: no analytics, no progress bars, optional docs sites."""
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    return DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=data_docs_sites or {},
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )


class _Runtime:
    """The process's ephemeral GX context with one pandas data source."""

    def __init__(self) -> None:
        import great_expectations as gx

        self.pid = os.getpid()
        self.context = gx.get_context(project_config=_project_config(), mode="ephemeral")
        self.datasource = self.context.data_sources.add_pandas(_DATASOURCE_NAME)
        self._batch_definitions: dict[str, Any] = {}

    def ensure_current(self) -> None:
        """Make this context the process's current one if there is none.

        Objects bound to this context use it in any case, but a few GX checks (e.g. whether
        GX Cloud is used) consult the current context and fail when there is none.
        """
        from great_expectations.data_context.data_context.context_factory import (
            project_manager,
        )
        from great_expectations.exceptions import DataContextRequiredError

        try:
            project_manager.get_current_project()
        except DataContextRequiredError:
            project_manager.set_project(self.context)

    def release_batches(self) -> None:
        """Let the execution engine drop the frames it loaded (it keeps the last one)."""
        batch_manager = self.datasource.get_execution_engine().batch_manager
        batch_manager.reset_batch_cache()
        batch_manager.batch_data_cache.clear()

    def batch_definition(self, asset_name: str) -> Any:
        """The whole-dataframe batch definition of the dataframe asset ``asset_name``."""
        if asset_name not in self._batch_definitions:
            asset = self.datasource.add_dataframe_asset(asset_name)
            self._batch_definitions[asset_name] = asset.add_batch_definition_whole_dataframe(
                _BATCH_DEFINITION_NAME
            )
        return self._batch_definitions[asset_name]


_RUNTIME: _Runtime | None = None
_LOCK = threading.RLock()


def _runtime() -> _Runtime:
    """Return the cached GX runtime, building it on first use (and after a fork)."""
    global _RUNTIME
    with _LOCK:
        if _RUNTIME is None or _RUNTIME.pid != os.getpid():
            _RUNTIME = _Runtime()
        _RUNTIME.ensure_current()
        return _RUNTIME
